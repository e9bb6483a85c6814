//! JSON-schema overrides that keep the generated CRDs structural and small, and the serde
//! predicates that leave default values out of serialized objects.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content the API server keeps verbatim (pod templates, Job specs).
pub(crate) fn preserved_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Any JSON value, kept verbatim (plugin configuration, provider blocks Sluice does not model).
pub(crate) fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// `skip_serializing_if` predicate: leaves `false` out, as Go's `omitempty` does.
pub(crate) fn is_false(value: &bool) -> bool {
    !value
}

/// `skip_serializing_if` predicate: leaves `0` out, as Go's `omitempty` does.
pub(crate) fn is_zero(value: &i32) -> bool {
    *value == 0
}
