// PLACEHOLDER: replaced by its implementation.
