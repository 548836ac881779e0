//! Starting the entry file: directly, or with `/bin/sh` when it has no `#!` line.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use tokio::sync::mpsc;

use super::workdir::Prepared;
use crate::process::{JobProcess, OutputLine};

/// Spawns the prepared entry file as the leader of a new process group.
///
/// `ETXTBSY` is retried briefly: another thread of this process may have forked while the
/// file was open for writing (a download, another agent of a swarm), and the child holds that
/// descriptor until its `exec`.
pub(super) async fn spawn_entry(
    prepared: &Prepared,
    lines: mpsc::Sender<OutputLine>,
) -> std::io::Result<JobProcess> {
    let mut attempt = 0;
    loop {
        let result = JobProcess::spawn(
            &prepared.entry,
            &[],
            &prepared.work_dir,
            &prepared.env,
            lines.clone(),
        );
        match result {
            Err(e) if e.raw_os_error() == Some(Errno::ENOEXEC as i32) => {
                // No interpreter line: run it as a shell script, like a shell would.
                let args = [prepared.entry.display().to_string()];
                return JobProcess::spawn(
                    Path::new("/bin/sh"),
                    &args,
                    &prepared.work_dir,
                    &prepared.env,
                    lines,
                );
            }
            Err(e) if e.raw_os_error() == Some(Errno::ETXTBSY as i32) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            other => return other,
        }
    }
}
