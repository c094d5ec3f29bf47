//! What iOS accepts on which channel and in which supervision state (pure).
//!
//! - Commands on a Shared iPad user channel: only ProfileList, InstallProfile, RemoveProfile,
//!   Restrictions, InviteToProgram, DeviceInformation, DeclarativeManagement, Settings and
//!   UserConfigured; anything else is answered `Error` 12021 [P MDMUserParser `_allCommands`].
//! - Payloads on a Shared iPad: the schema's `sharedipad: devicechannel/userchannel` flags
//!   [Y mdm/profiles] (web clips, mail, Exchange, CalDAV on user channels only; Wi-Fi,
//!   certificates, VPN, the global proxy on the device channel only).
//! - Supervised-only payloads (`supervised: true` for iOS [Y mdm/profiles]) on an unsupervised
//!   device. A Shared iPad is always supervised.
//!
//! The refusal codes of wrong-channel and unsupervised payloads are UNCONFIRMED (no device
//! capture or decompiled source gives them): the simulator answers
//! `MCInstallationErrorDomain` 4001 over its own [`SIM_CHOSEN_PAYLOAD_SCOPE`]. Tests should
//! check the status and the payload type in the text, not those numbers.
//! [`SimOptions::ignore_channel_scope`](crate::SimOptions::ignore_channel_scope) turns all of
//! this off (the old, lenient simulator).

use baton_proto::{ErrorChainItem, Profile, SharedIpadChannels, shared_ipad_channels};

use crate::ios_commands::{
    ChannelContext, CommandAnswer, INSTALLATION_DOMAIN, MDM_DOMAIN, chain_item,
};

/// Request types a Shared iPad user channel accepts [P MDMUserParser `_allCommands`].
pub const USER_CHANNEL_COMMANDS: &[&str] = &[
    "ProfileList",
    "InstallProfile",
    "RemoveProfile",
    "Restrictions",
    "InviteToProgram",
    "DeviceInformation",
    "DeclarativeManagement",
    "Settings",
    "UserConfigured",
];

/// iOS's code for a request type outside the channel's command set (`_invalidRequestTypeError`)
/// [P MDMUserParser, `processRequest:`].
pub const INVALID_REQUEST_TYPE: i64 = 12021;

/// The simulator's own code under 4001 for a payload this channel or supervision state does not
/// accept (UNCONFIRMED).
pub const SIM_CHOSEN_PAYLOAD_SCOPE: i64 = 4026;

/// The device is supervised: [`crate::SimOptions::supervised`], or a Shared iPad.
pub(crate) fn supervised(ctx: &ChannelContext<'_>) -> bool {
    ctx.options.supervised || ctx.options.shared_ipad
}

/// The answer to a command outside a user channel's command set, if it is one.
pub(crate) fn refuse_command(
    ctx: &ChannelContext<'_>,
    request_type: &str,
) -> Option<CommandAnswer> {
    if ctx.options.ignore_channel_scope
        || !ctx.user_channel
        || USER_CHANNEL_COMMANDS.contains(&request_type)
    {
        return None;
    }
    Some(CommandAnswer::error(vec![chain_item(
        MDM_DOMAIN,
        INVALID_REQUEST_TYPE,
        format!("The request type \u{201c}{request_type}\u{201d} is not valid on this channel."),
    )]))
}

/// Why this channel refuses a payload of `profile`, as an ErrorChain (UNCONFIRMED codes).
pub(crate) fn refuse_payloads(
    ctx: &ChannelContext<'_>,
    profile: &Profile,
) -> Option<Vec<ErrorChainItem>> {
    if ctx.options.ignore_channel_scope {
        return None;
    }
    let refuse = |why: String| {
        vec![
            chain_item(INSTALLATION_DOMAIN, 4001, "Profile Installation Failed"),
            chain_item(INSTALLATION_DOMAIN, SIM_CHOSEN_PAYLOAD_SCOPE, why),
        ]
    };
    for p in &profile.payloads {
        let t = p.payload_type.as_str();
        if !supervised(ctx) && baton_proto::supervised_only(t) {
            return Some(refuse(format!(
                "The payload \u{201c}{t}\u{201d} can only be installed on a supervised device."
            )));
        }
        if !ctx.options.shared_ipad {
            continue;
        }
        match (shared_ipad_channels(t), ctx.user_channel) {
            (SharedIpadChannels::DeviceOnly, true) => {
                return Some(refuse(format!(
                    "The payload \u{201c}{t}\u{201d} cannot be installed for a user on a \
                     Shared iPad."
                )));
            }
            (SharedIpadChannels::UserOnly, false) => {
                return Some(refuse(format!(
                    "The payload \u{201c}{t}\u{201d} can only be installed for a user on a \
                     Shared iPad."
                )));
            }
            _ => {}
        }
    }
    None
}
