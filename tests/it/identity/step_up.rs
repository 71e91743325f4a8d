//! Step-up: routes that require a stronger or fresher authentication.
