//! Route: which upstream serves the request. Today every request goes where
//! its client addressed it; rules by model, size, identity and failover
//! groups (issue: translation, routing and failover) fill this stage in.

use super::{Refusal, Stage};
use crate::exchange::{Exchange, Target};

#[derive(Debug, Default)]
pub struct Route;

impl Stage for Route {
    /// Where the client addressed the request (the admit stage's answer).
    type Input = Target;
    /// Where it goes.
    type Output = Target;

    async fn run(&self, ex: &mut Exchange, addressed: Target) -> Result<Target, Refusal> {
        ex.path = addressed.uri.path().to_string();
        ex.target = Some(addressed.clone());
        Ok(addressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Client, Listener};

    #[tokio::test]
    async fn without_rules_a_request_goes_where_its_client_addressed_it() {
        let addressed = Target {
            provider: "anthropic".into(),
            uri: "https://api.anthropic.com/v1/messages".parse().unwrap(),
            host: "api.anthropic.com".into(),
        };
        let mut ex = Exchange::new(Listener::Transparent, Client::default());
        let chosen = Route.run(&mut ex, addressed.clone()).await.unwrap();
        assert_eq!(chosen.uri, addressed.uri);
        assert_eq!(ex.target.unwrap().provider, "anthropic");
    }
}
