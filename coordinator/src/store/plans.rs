//! Plans.

use super::blobs::{check_and_count_blob_refs, release_blob_refs};
use super::nodes::count_plan_on_node;
use super::{abort, encode, next_id, ref_count, tx_get, Store, StoreError};
use crate::model::{Plan, StringMap, Timestamp};
use sled::Transactional;

/// What a plan should look like: the input of create and update.
#[derive(Debug, Clone, Default)]
pub struct PlanSpec {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The node that runs it; must exist.
    pub node_id: u64,
    /// Role → blob id; every blob must exist.
    pub files: StringMap,
    /// Setting → value.
    pub extra: StringMap,
}

/// Most keys a `files` or `extra` map may have.
const MAX_MAP_ENTRIES: usize = 256;
/// Longest `extra` value, in bytes.
const MAX_EXTRA_VALUE: usize = 64 * 1024;

impl PlanSpec {
    /// Checks every field that needs no lookup, naming the first bad one.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(StoreError::invalid(
                "name",
                "must be 1 to 200 bytes of text",
            ));
        }
        if self.description.len() > 4096 {
            return Err(StoreError::invalid("description", "longer than 4096 bytes"));
        }
        validate_map("files", &self.files)?;
        validate_map("extra", &self.extra)
    }
}

/// Checks the keys and values of a plan's or job's `files`/`extra` map.
pub(crate) fn validate_map(field: &str, map: &StringMap) -> Result<(), StoreError> {
    if map.len() > MAX_MAP_ENTRIES {
        return Err(StoreError::invalid(
            field,
            format!("more than {MAX_MAP_ENTRIES} entries"),
        ));
    }
    for (key, value) in map {
        let key_ok =
            !key.is_empty() && key.len() <= 128 && !key.chars().any(|c| c.is_control() || c == '=');
        if !key_ok {
            return Err(StoreError::invalid(
                format!("{field}.{key}"),
                "keys must be 1 to 128 bytes without control characters or '='",
            ));
        }
        if value.len() > MAX_EXTRA_VALUE {
            return Err(StoreError::invalid(
                format!("{field}.{key}"),
                format!("longer than {MAX_EXTRA_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Every plan, by id.
    pub fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
        super::list(&self.plans, "plans")
    }

    /// Plan `id`.
    pub fn plan(&self, id: u64) -> Result<Option<Plan>, StoreError> {
        super::get(&self.plans, "plans", &id.to_be_bytes())
    }

    /// Creates a plan. Its node and blobs must exist.
    pub fn create_plan(&self, spec: &PlanSpec) -> Result<Plan, StoreError> {
        spec.validate()?;
        let now = Timestamp::now();
        let plan = (
            &self.meta,
            &self.plans,
            &self.nodes,
            &self.blobs,
            &self.refs,
        )
            .transaction(|(meta, plans, nodes, blobs, refs)| {
                count_plan_on_node(nodes, refs, spec.node_id, 1)?;
                check_and_count_blob_refs(blobs, refs, &spec.files, "files")?;
                let plan = Plan {
                    id: next_id(meta, "seq/plans")?,
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    node_id: spec.node_id,
                    files: spec.files.clone(),
                    extra: spec.extra.clone(),
                    created_at: now,
                    updated_at: now,
                };
                plans.insert(&plan.id.to_be_bytes(), encode(&plan))?;
                Ok(plan)
            })?;
        Ok(plan)
    }

    /// Replaces plan `id`'s fields. Its node and blobs must exist.
    pub fn update_plan(&self, id: u64, spec: &PlanSpec) -> Result<Plan, StoreError> {
        spec.validate()?;
        let plan = (&self.plans, &self.nodes, &self.blobs, &self.refs).transaction(
            |(plans, nodes, blobs, refs)| {
                let Some(mut plan) = tx_get::<Plan>(plans, "plans", &id.to_be_bytes())? else {
                    return abort(StoreError::not_found("plan", id));
                };
                count_plan_on_node(nodes, refs, plan.node_id, -1)?;
                release_blob_refs(refs, &plan.files)?;
                count_plan_on_node(nodes, refs, spec.node_id, 1)?;
                check_and_count_blob_refs(blobs, refs, &spec.files, "files")?;
                plan.name = spec.name.clone();
                plan.description = spec.description.clone();
                plan.node_id = spec.node_id;
                plan.files = spec.files.clone();
                plan.extra = spec.extra.clone();
                plan.updated_at = Timestamp::now();
                plans.insert(&id.to_be_bytes(), encode(&plan))?;
                Ok(plan)
            },
        )?;
        Ok(plan)
    }

    /// Deletes plan `id` and its finished jobs, refusing while a job of it is unfinished.
    pub fn delete_plan(&self, id: u64) -> Result<Plan, StoreError> {
        let plan = (&self.plans, &self.nodes, &self.refs).transaction(|(plans, nodes, refs)| {
            let Some(plan) = tx_get::<Plan>(plans, "plans", &id.to_be_bytes())? else {
                return abort(StoreError::not_found("plan", id));
            };
            let active = ref_count(refs, &format!("active/{id}"))?;
            if active > 0 {
                return abort(StoreError::Conflict(format!(
                    "plan {id} has {active} unfinished job(s); cancel them first"
                )));
            }
            count_plan_on_node(nodes, refs, plan.node_id, -1)?;
            release_blob_refs(refs, &plan.files)?;
            plans.remove(&id.to_be_bytes())?;
            Ok(plan)
        })?;
        // No new job can be created for the plan now; drop its history. A crash here leaves
        // jobs without a plan, which `remove_orphan_jobs` clears at the next start.
        self.remove_jobs_of_plan(id)?;
        Ok(plan)
    }
}
