//! `strata rekey`: finishes a rotation of `--encryption-key`. With the key
//! file listing the new key first and the old ones after it, every object
//! still written with an old key is read, sealed again with the new key and
//! written back in place, so that the old keys can then be dropped from
//! the file. Objects written without any key are sealed too, so it also
//! encrypts a store that had none. Run it while no server has the store
//! open (it rewrites objects the servers treat as immutable); it can be
//! stopped and run again.

use strata_store::encrypted::KeyRing;

use crate::StoreArgs;

#[derive(clap::Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    store: StoreArgs,
}

pub async fn rekey_cmd(mut args: RekeyArgs) -> Result<(), String> {
    let key_file =
        args.store.encryption_key.take().ok_or(
            "strata rekey needs --encryption-key FILE (the new key first, then the old ones)",
        )?;
    let ring = KeyRing::load(&key_file).map_err(|e| format!("--encryption-key {e}"))?;
    // The store as stored: the objects' sealed bytes.
    let url = crate::store_url(&args.store)?;
    let opened = strata_store::open_store(&url)
        .await
        .map_err(|e| e.to_string())?;
    if matches!(opened.at_rest, strata_store::AtRest::Strata { .. }) {
        // The key must come from --encryption-key only: a store URL with
        // its own encryption_key would seal every object twice.
        return Err(
            "strata rekey: give the key file with --encryption-key, not in the store URL".into(),
        );
    }
    let raw = opened.store;
    let (mut kept, mut rewritten, mut bytes) = (0u64, 0u64, 0u64);
    // Directory by directory (a listing of one level at a time, each
    // listed in full before its objects are rewritten), so memory holds one
    // directory's names and the rewrites never meet a listing.
    let mut dirs: Vec<Option<object_store::path::Path>> = vec![None];
    while let Some(dir) = dirs.pop() {
        let level = raw
            .list_with_delimiter(dir.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        dirs.extend(level.common_prefixes.into_iter().map(Some));
        for meta in level.objects {
            if strata_store::paths::is_probe(meta.location.as_ref()) {
                continue; // the atomic-create probe's, about to be deleted
            }
            let (was_current, size) = rekey_one(&raw, &ring, &meta.location).await?;
            if was_current {
                kept += 1;
            } else {
                rewritten += 1;
                bytes += size;
            }
        }
    }
    println!(
        "rekey: {rewritten} objects ({bytes} bytes) sealed again with key {}; {kept} already were",
        ring.current().id_hex()
    );
    Ok(())
}

/// Seals the object at `path` with the current key unless it is already;
/// whether it was, and its plaintext size.
async fn rekey_one(
    raw: &strata_store::DynStore,
    ring: &KeyRing,
    path: &object_store::path::Path,
) -> Result<(bool, u64), String> {
    {
        // The header says which key wrote it.
        // (An object shorter than a header is a plain one: read it whole.)
        let header = raw.get_range(path, 0..32).await.unwrap_or_default();
        if ring.is_current(&header) {
            return Ok((true, 0));
        }
        let stored = raw
            .get(path)
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        // A plain object (the store was written without a key) is sealed
        // as it is: rekey also encrypts a store that had no key.
        let plain = if KeyRing::is_sealed(&stored) {
            ring.open(path, &stored).map_err(|e| e.to_string())?
        } else {
            stored.to_vec()
        };
        let sealed = ring.current().seal(&plain).map_err(|e| e.to_string())?;
        raw.put(path, sealed.into())
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        Ok((false, plain.len() as u64))
    }
}
