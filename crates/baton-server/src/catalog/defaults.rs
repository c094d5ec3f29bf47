//! What a fresh server starts with: the nobody user (`multi-user-owner = true`, no password)
//! and, when enabled, the sign-in web clip distributed to nobody plus the sign-out web clip
//! (the portal's session URL, [`sign_out_url`]) distributed to every signed-in person (the user group
//! [`SIGNED_IN_GROUP`], rule `not multi-user-owner`). Each is seeded once (a marker in
//! [`SEED_COLLECTION`] remembers it), so an operator's later changes are not undone at restart.

use baton_assign::{
    CatalogItem, DistributionId, Group, GroupId, ItemContent, ItemId, Membership, NOBODY_USERNAME,
    Rule, Scope, User,
};
use baton_store::{CasOutcome, KeyspaceBatch, Store};

use super::assignment_config::{RecordError, collection, encode, read_json};
use super::{DISTRIBUTIONS_COLLECTION, DistributionRecord, ITEMS_COLLECTION, TargetInput};
use crate::directory::{GROUPS_COLLECTION, USERS_COLLECTION, UserRecord};

/// Keyspace collection of seeding markers.
pub const SEED_COLLECTION: &str = "assignment_seed";
/// Id of the default sign-in web clip item.
pub const SIGN_IN_ITEM: &str = "sign-in";
/// Id of its default distribution (to nobody).
pub const SIGN_IN_DISTRIBUTION: &str = "sign-in-to-nobody";

/// Id of the default sign-out web clip item.
pub const SIGN_OUT_ITEM: &str = "sign-out";
/// Label of the default sign-out web clip.
pub const SIGN_OUT_LABEL: &str = "Sign out";
/// Id of its default distribution (to [`SIGNED_IN_GROUP`]).
pub const SIGN_OUT_DISTRIBUTION: &str = "sign-out-to-signed-in";
/// Id of the user group of everyone but the nobody user.
pub const SIGNED_IN_GROUP: &str = "signed-in-users";
/// The rule of [`SIGNED_IN_GROUP`].
pub const SIGNED_IN_RULE: &str = "not multi-user-owner";

/// The URL template of the sign-in clip: the portal plus the device's portal token.
pub fn sign_in_url(public_url: &str) -> String {
    format!(
        "{}/portal/$DEVICE.{}",
        public_url.trim_end_matches('/'),
        crate::reconciler::portal_token::PORTAL_TOKEN_ATTRIBUTE
    )
}

/// The URL template of the sign-out clip: the portal's session pages plus the secret of the
/// session that installed it ([`crate::reconciler::portal_session`]), so it works only for
/// that session.
pub fn sign_out_url(public_url: &str) -> String {
    format!(
        "{}/portal/session/$DEVICE.{}",
        public_url.trim_end_matches('/'),
        crate::reconciler::portal_session::PORTAL_SESSION_ATTRIBUTE
    )
}

/// Creates the nobody user if missing and, once, the sign-in clip and its distribution.
pub fn seed(
    store: &dyn Store,
    public_url: &str,
    sign_in_clip: Option<&str>,
    now: u64,
) -> Result<(), RecordError> {
    let mut batch = KeyspaceBatch::new();
    if read_json::<UserRecord>(store, USERS_COLLECTION, NOBODY_USERNAME)?.is_none() {
        let nobody = UserRecord {
            user: User::nobody(),
            password_hash: None,
            created_at: now,
            disabled: false,
        };
        batch.put(
            &collection(USERS_COLLECTION)?,
            NOBODY_USERNAME.as_bytes(),
            &encode(&nobody)?,
        );
    }
    let seeds = collection(SEED_COLLECTION)?;
    if let Some(label) = sign_in_clip
        && store.get(&seeds, SIGN_IN_ITEM.as_bytes())?.is_none()
    {
        let id = ItemId::new(SIGN_IN_ITEM)?;
        let item = CatalogItem {
            id: id.clone(),
            name: label.to_owned(),
            scope: Scope::User,
            leaves_on_sign_out: false,
            content: ItemContent::WebClip {
                label: label.to_owned(),
                url: sign_in_url(public_url),
                sign_in: true,
                full_screen: true,
                removable: false,
            },
        };
        let distribution = DistributionRecord {
            id: DistributionId::new(SIGN_IN_DISTRIBUTION)?,
            name: "Sign-in web clip for signed-out devices".into(),
            item: id,
            target: TargetInput::Users {
                users: vec![NOBODY_USERNAME.to_owned()],
            },
        };
        batch.put(
            &collection(ITEMS_COLLECTION)?,
            SIGN_IN_ITEM.as_bytes(),
            &encode(&item)?,
        );
        batch.put(
            &collection(DISTRIBUTIONS_COLLECTION)?,
            SIGN_IN_DISTRIBUTION.as_bytes(),
            &encode(&distribution)?,
        );
        batch.put(&seeds, SIGN_IN_ITEM.as_bytes(), b"1");
    }
    if sign_in_clip.is_some() && store.get(&seeds, SIGN_OUT_ITEM.as_bytes())?.is_none() {
        seed_sign_out(&mut batch, public_url)?;
    } else {
        upgrade_sign_out_url(store, &mut batch, public_url)?;
    }
    if batch.ops.is_empty() {
        return Ok(());
    }
    match store.apply(&batch)? {
        CasOutcome::Applied => Ok(()),
        _ => Err(RecordError::Corrupt {
            collection: SEED_COLLECTION.into(),
            reason: "seeding conflicted".into(),
        }),
    }
}

/// A sign-out clip seeded before portal sessions opened the device's portal URL, which no
/// longer signs anyone out: it gets the session URL ([`sign_out_url`]). An operator's own URL
/// is left alone.
fn upgrade_sign_out_url(
    store: &dyn Store,
    batch: &mut KeyspaceBatch,
    public_url: &str,
) -> Result<(), RecordError> {
    let Some(mut item) = read_json::<CatalogItem>(store, ITEMS_COLLECTION, SIGN_OUT_ITEM)? else {
        return Ok(());
    };
    let ItemContent::WebClip { url, .. } = &mut item.content else {
        return Ok(());
    };
    if *url != sign_in_url(public_url) {
        return Ok(());
    }
    *url = sign_out_url(public_url);
    batch.put(
        &collection(ITEMS_COLLECTION)?,
        SIGN_OUT_ITEM.as_bytes(),
        &encode(&item)?,
    );
    Ok(())
}

/// Adds the sign-out clip, the signed-in user group and the distribution between them.
fn seed_sign_out(batch: &mut KeyspaceBatch, public_url: &str) -> Result<(), RecordError> {
    let id = ItemId::new(SIGN_OUT_ITEM)?;
    let item = CatalogItem {
        id: id.clone(),
        name: SIGN_OUT_LABEL.to_owned(),
        scope: Scope::User,
        leaves_on_sign_out: true,
        content: ItemContent::WebClip {
            label: SIGN_OUT_LABEL.to_owned(),
            url: sign_out_url(public_url),
            sign_in: false,
            full_screen: true,
            removable: false,
        },
    };
    let rule = Rule::parse(SIGNED_IN_RULE).map_err(|e| RecordError::Corrupt {
        collection: SEED_COLLECTION.into(),
        reason: format!("signed-in rule: {e}"),
    })?;
    let group = Group {
        id: GroupId::new(SIGNED_IN_GROUP)?,
        name: "Everyone signed in (all users but nobody)".into(),
        members: Membership::UserRule { rule },
    };
    let distribution = DistributionRecord {
        id: DistributionId::new(SIGN_OUT_DISTRIBUTION)?,
        name: "Sign-out web clip for signed-in people".into(),
        item: id,
        target: TargetInput::Groups {
            groups: vec![group.id.clone()],
        },
    };
    batch.put(
        &collection(GROUPS_COLLECTION)?,
        SIGNED_IN_GROUP.as_bytes(),
        &encode(&group)?,
    );
    batch.put(
        &collection(ITEMS_COLLECTION)?,
        SIGN_OUT_ITEM.as_bytes(),
        &encode(&item)?,
    );
    batch.put(
        &collection(DISTRIBUTIONS_COLLECTION)?,
        SIGN_OUT_DISTRIBUTION.as_bytes(),
        &encode(&distribution)?,
    );
    batch.put(
        &collection(SEED_COLLECTION)?,
        SIGN_OUT_ITEM.as_bytes(),
        b"1",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use baton_store::SledStore;

    use super::*;

    const URL: &str = "https://mdm.test";

    fn sign_out_item_url(store: &dyn Store) -> String {
        let item: CatalogItem = read_json(store, ITEMS_COLLECTION, SIGN_OUT_ITEM)
            .unwrap()
            .unwrap();
        match item.content {
            ItemContent::WebClip { url, .. } => url,
            other => panic!("not a web clip: {other:?}"),
        }
    }

    fn set_sign_out_url(store: &dyn Store, url: &str) {
        let mut item: CatalogItem = read_json(store, ITEMS_COLLECTION, SIGN_OUT_ITEM)
            .unwrap()
            .unwrap();
        if let ItemContent::WebClip { url: u, .. } = &mut item.content {
            *u = url.to_owned();
        }
        let mut batch = KeyspaceBatch::new();
        batch.put(
            &collection(ITEMS_COLLECTION).unwrap(),
            SIGN_OUT_ITEM.as_bytes(),
            &encode(&item).unwrap(),
        );
        store.apply(&batch).unwrap();
    }

    #[test]
    fn the_sign_out_clip_opens_the_session_url_and_old_seeds_are_upgraded() {
        let store = SledStore::temporary().unwrap();
        seed(&store, URL, Some("Sign in"), 1).unwrap();
        assert_eq!(
            sign_out_item_url(&store),
            "https://mdm.test/portal/session/$DEVICE.portal_session"
        );
        // Seeded before portal sessions: the device URL, rewritten at the next start.
        set_sign_out_url(&store, &sign_in_url(URL));
        seed(&store, URL, Some("Sign in"), 2).unwrap();
        assert_eq!(sign_out_item_url(&store), sign_out_url(URL));
        // An operator's own URL is left alone.
        set_sign_out_url(&store, "https://elsewhere.test/out");
        seed(&store, URL, Some("Sign in"), 3).unwrap();
        assert_eq!(sign_out_item_url(&store), "https://elsewhere.test/out");
    }
}
