pub mod audit;
pub mod ca;
pub mod doctor;
pub mod scan;
pub mod status;
pub mod trust_env;
pub mod up;
