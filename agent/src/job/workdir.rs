//! A job's work directory: its files under safe names, the entry file, `extra.json` and the
//! environment.
//!
//! ```text
//!  data_dir/jobs/<job id>/
//!     <file name>…      plan files (hard links into data_dir/cache/<sha256>)
//!     extra.json        the dispatch's extra map
//!     output/           SORTIE_OUTPUT_DIR: every regular file here is uploaded at the end
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sortie_shared::{JobDispatch, PlanFile};

use super::{fetch, JobContext};

/// The error when no file can be run.
pub const NO_ENTRY: &str = "plan has no entry file (role script or file)";

/// Names a plan file may not take: the agent's own entries in the work directory.
const RESERVED: [&str; 2] = ["extra.json", "output"];

/// A work directory ready to run.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The job's cwd.
    pub work_dir: PathBuf,
    /// `work_dir/output`.
    pub output_dir: PathBuf,
    /// The file to run, absolute.
    pub entry: PathBuf,
    /// Its name in the work directory (for messages).
    pub entry_name: String,
    /// Variables added to the job's environment.
    pub env: Vec<(String, String)>,
}

/// Lays out the work directory; the error is the job's `Finished` reason.
pub(super) async fn prepare(ctx: &JobContext, dispatch: &JobDispatch) -> Result<Prepared, String> {
    let names = local_names(&dispatch.files);
    let entry = entry_index(&dispatch.files).ok_or(NO_ENTRY)?;
    let work_dir = ctx.work_dir(dispatch.job.id);
    let output_dir = work_dir.join("output");
    tokio::fs::create_dir_all(&output_dir)
        .await
        .map_err(|e| format!("creating the work directory {}: {e}", work_dir.display()))?;
    for (file, name) in dispatch.files.iter().zip(&names) {
        fetch::fetch_into(ctx, file, &work_dir.join(name))
            .await
            .map_err(|e| {
                format!(
                    "plan file {name:?} (role {:?}, blob {}): {e}",
                    file.role, file.blob_id
                )
            })?;
    }
    let entry_name = names[entry].clone();
    let entry_path = work_dir.join(&entry_name);
    make_executable(&entry_path)
        .await
        .map_err(|e| format!("making {entry_name:?} executable: {e}"))?;
    let extra = serde_json::to_vec_pretty(&dispatch.extra).expect("a string map serializes");
    tokio::fs::write(work_dir.join("extra.json"), extra)
        .await
        .map_err(|e| format!("writing extra.json: {e}"))?;
    let mut env = job_env(ctx.node_id, dispatch, &output_dir);
    if let Some(socket) = &ctx.hal_socket {
        env.push((
            crate::hardware::socket::SOCKET_ENV.to_owned(),
            socket.display().to_string(),
        ));
    }
    Ok(Prepared {
        env,
        work_dir,
        output_dir,
        entry: entry_path,
        entry_name,
    })
}

async fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = tokio::fs::metadata(path).await?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    tokio::fs::set_permissions(path, permissions).await
}

/// Which file to run: the one with role `script`, else `file`, else the only file.
pub fn entry_index(files: &[PlanFile]) -> Option<usize> {
    let by_role = |role: &str| files.iter().position(|f| f.role == role);
    by_role("script")
        .or_else(|| by_role("file"))
        .or_else(|| (files.len() == 1).then_some(0))
}

/// The name each file gets in the work directory: the base name of `name` only (no
/// directories, no `..`), prefixed with the role when two files would share a name or it
/// would collide with `extra.json` or `output/`.
pub fn local_names(files: &[PlanFile]) -> Vec<String> {
    let base: Vec<String> = files.iter().map(|f| sanitize(&f.name, f.blob_id)).collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for name in &base {
        *count.entry(name.as_str()).or_default() += 1;
    }
    let mut names: Vec<String> = files
        .iter()
        .zip(&base)
        .map(|(file, name)| {
            if count[name.as_str()] > 1 || RESERVED.contains(&name.as_str()) {
                format!("{}-{name}", sanitize(&file.role, file.blob_id))
            } else {
                name.clone()
            }
        })
        .collect();
    // Roles are unique within a job, but a role prefix could still meet another file's name.
    let mut seen = std::collections::HashSet::new();
    for (name, file) in names.iter_mut().zip(files) {
        if !seen.insert(name.clone()) || RESERVED.contains(&name.as_str()) {
            *name = format!("{}-{name}", file.blob_id);
            seen.insert(name.clone());
        }
    }
    names
}

fn sanitize(name: &str, blob_id: u64) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        format!("blob-{blob_id}")
    } else {
        clean.to_owned()
    }
}

/// The variables a job sees besides the agent's own environment (minus its `SORTIE_AGENT_*`).
pub fn job_env(node_id: u64, dispatch: &JobDispatch, output_dir: &Path) -> Vec<(String, String)> {
    let job = dispatch.job;
    let mut env = vec![
        ("SORTIE_JOB_ID".to_owned(), job.id.to_string()),
        ("SORTIE_PLAN_ID".to_owned(), job.plan_id.to_string()),
        ("SORTIE_JOB_SEQ".to_owned(), job.job_seq.to_string()),
        ("SORTIE_NODE_ID".to_owned(), node_id.to_string()),
        (
            "SORTIE_OUTPUT_DIR".to_owned(),
            output_dir.display().to_string(),
        ),
    ];
    // Keys that differ only in case or punctuation map to one variable; the last (in key
    // order) wins, deterministically.
    let extras: BTreeMap<String, &String> = dispatch
        .extra
        .iter()
        .map(|(key, value)| (format!("SORTIE_EXTRA_{}", env_key(key)), value))
        .collect();
    env.extend(extras.into_iter().map(|(k, v)| (k, v.clone())));
    env
}

fn env_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
