//! The admin CLI (`as4gw messages …`) against a running API.
