//! WeChat Pay as one product: APIv2 orders, payment and refund
//! notifications, refunds, trade bills and APIv3, which share one ledger
//! ([`crate::store`]) and call each other freely.

pub(crate) mod bills;
pub(crate) mod notify;
pub(crate) mod orders;
pub(crate) mod refund;
pub(crate) mod v3;
