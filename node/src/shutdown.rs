//! One shutdown signal for every server a node runs: the local API, the Redis front end and
//! whatever a program embedding weft adds. Each server's loop waits on it between pieces of
//! work, so work begun is finished before the server returns.

use tokio::sync::watch;

/// Fires the signal; dropping it fires it too, so a caller that goes away stops its servers.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Waits for the signal; cloned, one for each loop that must stop.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal, not yet fired.
pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger(sender), Shutdown(receiver))
}

impl Trigger {
    /// Fires the signal: every [`Shutdown::wait`] returns, now and from now on.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        self.fire();
    }
}

impl Shutdown {
    /// Returns once the signal has fired (at once when it already has).
    ///
    /// Cancel safety: cancel safe; waiting again after a cancelled wait loses nothing.
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which fires it.
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Whether the signal has fired.
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_returns_once_fired_or_dropped() {
        let (trigger, mut shutdown) = channel();
        let mut other = shutdown.clone();
        assert!(!shutdown.fired());
        let waiting = tokio::spawn(async move { other.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "returned before the signal");
        trigger.fire();
        waiting.await.expect("waiter ran");
        shutdown.wait().await;
        assert!(shutdown.fired());

        let (trigger, mut shutdown) = channel();
        drop(trigger);
        shutdown.wait().await;
        assert!(shutdown.fired(), "a dropped trigger fires");
    }
}
