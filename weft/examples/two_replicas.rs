//! Two replicas in one program, a laptop and a phone, syncing over loopback: each one's
//! write reaches the other, and each follows the other's changes with `watch`.
//!
//! Run with `cargo run -p weft --example two_replicas`.

use std::time::Duration;

use weft::{ChangeValue, Network, Weft};

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs = tempfile::tempdir()?;
    let mut laptop = Weft::open(dirs.path().join("laptop"))?;
    laptop.start(Network::loopback()).await?;
    // A write ticket: the phone gets an author of its own that the laptop has granted.
    let ticket = laptop.ticket(true).await?;

    let mut phone = Weft::join(dirs.path().join("phone"), &ticket)?;
    phone.start(Network::loopback()).await?;
    let mut phone_sees = phone.watch("notes/", Some(0));
    let mut laptop_sees = laptop.watch("notes/", None);

    laptop.put("notes/1", "written on the laptop").await?;
    let change = tokio::time::timeout(Duration::from_secs(30), phone_sees.next()).await??;
    println!("phone   sees change {}: {}", change.seq, describe(&change));

    phone.put("notes/2", "written on the phone").await?;
    loop {
        let change = tokio::time::timeout(Duration::from_secs(30), laptop_sees.next()).await??;
        println!("laptop  sees change {}: {}", change.seq, describe(&change));
        if change.key == b"notes/2" {
            break;
        }
    }
    for (name, replica) in [("laptop", &laptop), ("phone", &phone)] {
        for (key, value) in replica.scan("notes/").await? {
            println!(
                "{name:<7} holds {} = {}",
                String::from_utf8_lossy(&key),
                String::from_utf8_lossy(&value)
            );
        }
    }
    drop((phone_sees, laptop_sees));
    phone.close().await?;
    laptop.close().await?;
    Ok(())
}

fn describe(change: &weft::Change) -> String {
    let key = String::from_utf8_lossy(&change.key);
    match &change.value {
        ChangeValue::Put(value) => format!("{key} = {}", String::from_utf8_lossy(value)),
        ChangeValue::Deleted => format!("{key} deleted"),
        ChangeValue::Pruned => format!("{key} (value pruned since)"),
    }
}
