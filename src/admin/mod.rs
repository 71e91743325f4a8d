//! Self-serve administration: the admin API on the admin listener
//! (`/admin/v1/`, operator bearer tokens), the setup portal on the public
//! listener (`portal`: setup links and tenant admins), the operations
//! behind both, and the audit log of every change. Mounted by `app`, which implements
//! [`Current`]; `proxy` and `endpoints` never import this module.

pub mod api;
pub mod audit;
pub mod operator;
pub mod ops;
pub mod portal;
pub mod service_accounts;
pub mod tokens;

pub use audit::{Actor, AuditAction};
pub use ops::{AdminCtx, Current, OpError};
