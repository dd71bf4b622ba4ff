//! One module per page: each reads what it shows from the store and
//! renders it, or says what is missing.

pub(super) mod journey;
pub(super) mod overview;
pub(super) mod owners;
pub(super) mod record;
pub(super) mod runs;
pub(super) mod violations;
