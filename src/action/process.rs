//! What the actions that run local programs (`script`, plugins) share: the program leads its
//! own process group, and the whole group is killed when the step ends without the program
//! having exited on its own (a timeout, output over its limit, the step cancelled).

/// SIGKILL to a child's whole process group (it leads one: `process_group(0)`) when dropped
/// armed — on a timeout, and when the step is cancelled (the engine's step timeout drops the
/// action) — so that background processes it started (`sleep 300 &`) end with it.
pub(crate) struct GroupKiller(Option<nix::unistd::Pid>);

impl GroupKiller {
    pub(crate) fn new(child: &tokio::process::Child) -> GroupKiller {
        GroupKiller(
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p > 0)
                .map(nix::unistd::Pid::from_raw),
        )
    }

    /// The program exited on its own: leave the group alone.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}
