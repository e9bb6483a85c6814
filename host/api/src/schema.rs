//! JSON-schema overrides that keep the generated CRDs structural and small.

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
