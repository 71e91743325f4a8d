//! Entra groups overage resolved through Microsoft Graph.
