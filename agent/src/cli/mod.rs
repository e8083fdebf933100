pub mod audit;
pub mod ca;
pub mod scan;
pub mod status;
pub mod up;
