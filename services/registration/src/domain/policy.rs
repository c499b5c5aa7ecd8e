//! The cafe's auto-confirm policy: when on, a new booking is confirmed the moment it arrives,
//! with no admin in the loop.

use chrono::{DateTime, Utc};

use crate::domain::{AdminId, CafeId, Decider};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoConfirmPolicy {
    pub cafe_id: CafeId,
    pub auto_confirm: bool,
    /// The admin who last changed it; `None` while it is still the deployment's initial
    /// setting (`REGISTRATION_AUTO_CONFIRM`).
    pub updated_by: Option<AdminId>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl AutoConfirmPolicy {
    /// The policy as the deployment's configuration sets it, before any admin touched it.
    pub fn initial(cafe_id: CafeId, auto_confirm: bool) -> Self {
        Self {
            cafe_id,
            auto_confirm,
            updated_by: None,
            updated_at: None,
        }
    }

    /// An admin's decision; it outlives restarts and configuration changes.
    pub fn set(&mut self, auto_confirm: bool, by: AdminId, now: DateTime<Utc>) {
        self.auto_confirm = auto_confirm;
        self.updated_by = Some(by);
        self.updated_at = Some(now);
    }

    /// Who confirms a new booking at once, if anyone.
    pub fn confirmer(&self) -> Option<Decider> {
        self.auto_confirm.then_some(Decider::AutoConfirm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_decision_is_recorded() {
        let mut policy = AutoConfirmPolicy::initial(CafeId::parse("main").unwrap(), false);
        assert_eq!(policy.confirmer(), None);
        let now = Utc::now();
        policy.set(true, AdminId::parse("root").unwrap(), now);
        assert_eq!(policy.confirmer(), Some(Decider::AutoConfirm));
        assert_eq!(policy.updated_at, Some(now));
        assert_eq!(policy.updated_by.unwrap().as_str(), "root");
    }
}
