pub mod money;
pub mod sign;
pub mod xml;
