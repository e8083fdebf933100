#![no_std]
// Exists so the agent can name this crate as a build-dependency (cache invalidation).
