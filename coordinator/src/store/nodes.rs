//! Nodes and their points.

use serde_json::{Map, Value};
use sled::Transactional;

use super::{
    abort, add_ref, decode_u64, encode, next_id, ref_count, tx_get, Store, StoreError, TxResult,
};
use crate::model::{Node, NodeStatus, Point, Timestamp};

/// Point types every coordinator knows, with gosd's id for `livestream_flv`. Other type names
/// are allowed and get ids from 100 up, in the order they are first used.
pub const BUILTIN_POINT_TYPES: &[(u64, &str)] = &[
    (1, "drone-status"),
    (2, "livestream_flv"),
    (3, "depot-status"),
    (4, "weather"),
];

/// Node types: a drone, a drone depot (dock), a sensor mast.
pub const NODE_TYPES: &[&str] = &["air", "depot", "mast"];

/// What a node should look like: the input of create and update.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// One of [`NODE_TYPES`].
    pub type_name: String,
    /// Its points. On update, a point keeps its id if its name is unchanged.
    pub points: Vec<PointSpec>,
}

/// One point of a [`NodeSpec`].
#[derive(Debug, Clone)]
pub struct PointSpec {
    /// Name, unique within the node.
    pub name: String,
    /// A builtin type from [`BUILTIN_POINT_TYPES`] or a custom one.
    pub point_type_name: String,
    /// Type-specific parameters.
    pub params: Map<String, Value>,
}

impl NodeSpec {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name("name", &self.name)?;
        if self.description.len() > 4096 {
            return Err(StoreError::invalid("description", "longer than 4096 bytes"));
        }
        if !NODE_TYPES.contains(&self.type_name.as_str()) {
            return Err(StoreError::invalid(
                "type_name",
                format!(
                    "{:?} is not one of {}",
                    self.type_name,
                    NODE_TYPES.join(", ")
                ),
            ));
        }
        for (i, point) in self.points.iter().enumerate() {
            check_name(&format!("points[{i}].name"), &point.name)?;
            let type_ok = !point.point_type_name.is_empty()
                && point.point_type_name.len() <= 64
                && point
                    .point_type_name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
            if !type_ok {
                return Err(StoreError::invalid(
                    format!("points[{i}].point_type_name"),
                    "must be 1 to 64 characters of a-z, 0-9, '_' or '-'",
                ));
            }
            if self.points[..i].iter().any(|p| p.name == point.name) {
                return Err(StoreError::invalid(
                    format!("points[{i}].name"),
                    format!("the node already has a point named {:?}", point.name),
                ));
            }
        }
        Ok(())
    }
}

fn check_name(field: &str, name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must be 1 to 200 bytes of text without control characters",
        ));
    }
    Ok(())
}

impl Store {
    /// Every node, by id.
    pub fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        super::list(&self.nodes, "nodes")
    }

    /// Node `id`.
    pub fn node(&self, id: u64) -> Result<Option<Node>, StoreError> {
        super::get(&self.nodes, "nodes", &id.to_be_bytes())
    }

    /// The node named `name`.
    pub fn node_by_name(&self, name: &str) -> Result<Option<Node>, StoreError> {
        match self.nodes_by_name.get(name)?.and_then(|v| decode_u64(&v)) {
            Some(id) => self.node(id),
            None => Ok(None),
        }
    }

    /// Creates a node.
    pub fn create_node(&self, spec: &NodeSpec) -> Result<Node, StoreError> {
        spec.validate()?;
        let now = Timestamp::now();
        let node = (
            &self.meta,
            &self.nodes,
            &self.nodes_by_name,
            &self.point_types,
        )
            .transaction(|(meta, nodes, by_name, point_types)| {
                if by_name.get(&spec.name)?.is_some() {
                    return abort(StoreError::Conflict(format!(
                        "a node named {:?} already exists",
                        spec.name
                    )));
                }
                let id = next_id(meta, "seq/nodes")?;
                let node = Node {
                    id,
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    points: build_points(meta, point_types, id, &spec.points, &[])?,
                    type_name: spec.type_name.clone(),
                    status: NodeStatus::Offline,
                    last_seen: None,
                    created_at: now,
                    updated_at: now,
                };
                nodes.insert(&id.to_be_bytes(), encode(&node))?;
                by_name.insert(spec.name.as_bytes(), &id.to_be_bytes())?;
                Ok(node)
            })?;
        Ok(node)
    }

    /// Replaces node `id`'s name, description, type and points.
    pub fn update_node(&self, id: u64, spec: &NodeSpec) -> Result<Node, StoreError> {
        spec.validate()?;
        let node = (
            &self.meta,
            &self.nodes,
            &self.nodes_by_name,
            &self.point_types,
        )
            .transaction(|(meta, nodes, by_name, point_types)| {
                let Some(mut node) = tx_get::<Node>(nodes, "nodes", &id.to_be_bytes())? else {
                    return abort(StoreError::not_found("node", id));
                };
                if node.name != spec.name {
                    if by_name.get(&spec.name)?.is_some() {
                        return abort(StoreError::Conflict(format!(
                            "a node named {:?} already exists",
                            spec.name
                        )));
                    }
                    by_name.remove(node.name.as_bytes())?;
                    by_name.insert(spec.name.as_bytes(), &id.to_be_bytes())?;
                }
                node.points = build_points(meta, point_types, id, &spec.points, &node.points)?;
                node.name = spec.name.clone();
                node.description = spec.description.clone();
                node.type_name = spec.type_name.clone();
                node.updated_at = Timestamp::now();
                nodes.insert(&id.to_be_bytes(), encode(&node))?;
                Ok(node)
            })?;
        Ok(node)
    }

    /// Deletes node `id`, refusing while plans target it.
    pub fn delete_node(&self, id: u64) -> Result<Node, StoreError> {
        let node = (&self.nodes, &self.nodes_by_name, &self.refs).transaction(
            |(nodes, by_name, refs)| {
                let Some(node) = tx_get::<Node>(nodes, "nodes", &id.to_be_bytes())? else {
                    return abort(StoreError::not_found("node", id));
                };
                let plans = ref_count(refs, &format!("node/{id}"))?;
                if plans > 0 {
                    return abort(StoreError::Conflict(format!(
                        "node {id} is the target of {plans} plan(s); delete or move them first"
                    )));
                }
                nodes.remove(&id.to_be_bytes())?;
                by_name.remove(node.name.as_bytes())?;
                Ok(node)
            },
        )?;
        Ok(node)
    }
}

/// Builds a node's points from specs, keeping the id of a point whose name is unchanged.
fn build_points(
    meta: &sled::transaction::TransactionalTree,
    point_types: &sled::transaction::TransactionalTree,
    node_id: u64,
    specs: &[PointSpec],
    existing: &[Point],
) -> TxResult<Vec<Point>> {
    specs
        .iter()
        .map(|spec| {
            let id = match existing.iter().find(|p| p.name == spec.name) {
                Some(p) => p.id,
                None => next_id(meta, "seq/points")?,
            };
            Ok(Point {
                id,
                name: spec.name.clone(),
                node_id,
                point_type_id: point_type_id(meta, point_types, &spec.point_type_name)?,
                point_type_name: spec.point_type_name.clone(),
                params: spec.params.clone(),
            })
        })
        .collect()
}

/// The id of a point type, assigning the next custom id (100 up) to a new type name.
fn point_type_id(
    meta: &sled::transaction::TransactionalTree,
    point_types: &sled::transaction::TransactionalTree,
    name: &str,
) -> TxResult<u64> {
    if let Some((id, _)) = BUILTIN_POINT_TYPES.iter().find(|(_, n)| *n == name) {
        return Ok(*id);
    }
    if let Some(id) = point_types.get(name)?.and_then(|v| decode_u64(&v)) {
        return Ok(id);
    }
    let id = 99 + next_id(meta, "seq/point_types")?;
    point_types.insert(name, &id.to_be_bytes())?;
    Ok(id)
}

/// Counts plans on a node (used by the plan store).
pub(super) fn count_plan_on_node(
    nodes: &sled::transaction::TransactionalTree,
    refs: &sled::transaction::TransactionalTree,
    node_id: u64,
    delta: i64,
) -> TxResult<()> {
    if delta > 0 && nodes.get(node_id.to_be_bytes())?.is_none() {
        return abort(StoreError::invalid(
            "node_id",
            format!("node {node_id} does not exist"),
        ));
    }
    add_ref(refs, &format!("node/{node_id}"), delta)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drone(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            description: String::new(),
            type_name: "air".into(),
            points: vec![
                PointSpec {
                    name: "camera".into(),
                    point_type_name: "livestream_flv".into(),
                    params: Map::new(),
                },
                PointSpec {
                    name: "lidar".into(),
                    point_type_name: "lidar-scan".into(),
                    params: Map::new(),
                },
            ],
        }
    }

    #[test]
    fn points_get_type_ids_and_keep_ids_on_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let node = store.create_node(&drone("d1")).unwrap();
        assert_eq!(node.points[0].point_type_id, 2);
        assert_eq!(node.points[1].point_type_id, 100);
        let mut spec = drone("d1-renamed");
        spec.points.reverse();
        let updated = store.update_node(node.id, &spec).unwrap();
        assert_eq!(updated.points[1].id, node.points[0].id);
        assert!(store.node_by_name("d1").unwrap().is_none());
        assert_eq!(
            store.node_by_name("d1-renamed").unwrap().unwrap().id,
            node.id
        );
    }

    #[test]
    fn names_are_unique_and_types_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_node(&drone("d1")).unwrap();
        assert!(matches!(
            store.create_node(&drone("d1")),
            Err(StoreError::Conflict(_))
        ));
        let mut bad = drone("d2");
        bad.type_name = "submarine".into();
        let err = store.create_node(&bad).unwrap_err();
        assert!(matches!(err, StoreError::Invalid { ref field, .. } if field == "type_name"));
    }
}
