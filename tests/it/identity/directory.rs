//! SCIM groups as session groups: kept current on every replica, nested groups flattened, cycles refused.
