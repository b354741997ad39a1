//! Account commands: add, edit and delete an account; adopt one from the store and release it
//! (leases, when several instances share a store).

use super::{check_id, check_name, Engine};
use crate::account::Account;
use crate::apple::token::SToken;
use crate::base::time::Millis;
use crate::contract::error::EngineError;
use crate::contract::output::Output;
use crate::effects::EngineChange;
use crate::persist::keys::{self, account_key, SETTINGS_KEY};
use crate::persist::LoadedRecord;

impl Engine {
    /// Takes over one account while running, from a store's records: call when this instance
    /// acquires the account's lease (several backends on one store). Pass the account's records and
    /// the records of no account (or everything the store holds; records of other accounts are
    /// skipped). The account's policies are loaded from the records, and of the records of no
    /// account the device and user facts this engine does not have and the settings, when given:
    /// it was told every fact and setting since it started, so what it has is as new as the store's.
    /// Adopting several accounts in a row, pass the records of no account with the first only
    /// (`store.loadAccount(id, { shared: false })` for the others). Then drain [`Engine::poll_output`].
    /// Records are [`StoredRecord`](crate::StoredRecord)s or [`StoredRecordJson`](crate::StoredRecordJson)s, as for [`Engine::restore`].
    pub fn adopt(&mut self, account_id: &str, records: Vec<impl Into<LoadedRecord>>, now: Millis) -> Result<(), EngineError> {
        self.advance_clock(now);
        if self.accounts.contains_key(account_id) {
            return Err(EngineError::AccountExists(account_id.to_owned()));
        }
        let new_fact = |key: &str| match keys::fact_of_key(key) {
            Some(keys::FactKey::Device(serial)) => !self.facts.devices.contains_key(&serial),
            Some(keys::FactKey::User(user)) => !self.facts.users.contains_key(&user),
            None => true,
        };
        let records: Vec<LoadedRecord> = records
            .into_iter()
            .map(Into::into)
            .filter(|r| keys::belongs_to_account(r, account_id) || (keys::is_global(&r.key) && new_fact(&r.key)))
            .collect();
        if !records.iter().any(|r| r.key == account_key(account_id)) {
            return Err(EngineError::UnknownAccount(account_id.to_owned()));
        }
        let has_settings = records.iter().any(|r| r.key == SETTINGS_KEY);
        // Loading into a copy keeps the engine unchanged when a record is refused.
        let mut loaded = Self::new(self.config.clone(), self.clock.now())?;
        loaded.load_records(records)?;
        self.facts.absorb(loaded.facts);
        if has_settings {
            self.notify_users = loaded.notify_users;
        }
        self.policies.extend(loaded.policies);
        for mut account in loaded.accounts.into_accounts() {
            account.adopted();
            self.accounts.insert(account);
        }
        self.effects.absorb(loaded.effects);
        Ok(())
    }

    /// Stops driving an account without deleting its records: call at once when this instance
    /// loses the account's lease (another instance drives it now). Nothing more is sent, written
    /// for it; events already produced are still delivered; answers to its requests still in
    /// flight count as unknown.
    pub fn release(&mut self, account_id: &str, now: Millis) -> Result<(), EngineError> {
        self.advance_clock(now);
        self.account(account_id)?;
        self.accounts.remove(account_id);
        self.effects.forget_account(account_id);
        self.policies.retain(|_, p| p.account_id != account_id);
        self.forget_in_flight(account_id);
        self.outputs.retain(|output| !matches!(output, Output::Request(r) if r.account_id.as_deref() == Some(account_id)));
        Ok(())
    }

    /// `addAccount`: the token is decoded and checked first.
    pub(super) fn add_account(&mut self, account_id: String, name: String, token: &str, now: Millis) -> Result<(), EngineError> {
        check_id("accountId", &account_id)?;
        check_name(&name)?;
        if self.accounts.contains_key(&account_id) {
            return Err(EngineError::AccountExists(account_id));
        }
        let token = self.usable_token(token, None, now)?;
        self.effects.account(&account_id).record_changed();
        self.accounts.insert(Account::new(account_id, name, token, &self.config));
        Ok(())
    }

    /// `editAccount`: a new name, a new token (for another organization: the account starts over), or both.
    pub(super) fn edit_account(&mut self, account_id: &str, name: Option<String>, token: Option<String>, now: Millis) -> Result<(), EngineError> {
        self.account_mut(account_id)?;
        if let Some(name) = &name {
            check_name(name)?;
        }
        let token = token.map(|t| self.usable_token(&t, Some(account_id), now)).transpose()?;
        let (account, mut fx) = self.account_effects(account_id)?;
        if let Some(name) = name {
            account.name = name;
            fx.record_changed();
        }
        if let Some(token) = token {
            account.replace_token(token, now, &mut fx);
        }
        Ok(())
    }

    /// Decodes an uploaded token and checks it can be used for `for_account` (or a new account).
    fn usable_token(&self, text: &str, for_account: Option<&str>, now: Millis) -> Result<SToken, EngineError> {
        let token = SToken::decode(text)?;
        token.check_not_expired(now)?;
        if let Some(other) = self.accounts.values().find(|a| Some(a.id.as_str()) != for_account && a.token().same_credential(&token)) {
            return Err(EngineError::DuplicateToken(other.id.clone()));
        }
        Ok(token)
    }

    /// `deleteAccount`: refused while a policy uses the account.
    pub(super) fn delete_account(&mut self, account_id: &str) -> Result<(), EngineError> {
        self.account_mut(account_id)?;
        let policies: Vec<String> = self.policies.values().filter(|p| p.account_id == account_id).map(|p| p.name.clone()).collect();
        if !policies.is_empty() {
            return Err(EngineError::AccountInUse { account_id: account_id.to_owned(), policies });
        }
        self.accounts.remove(account_id);
        self.effects.forget_account(account_id);
        self.forget_in_flight(account_id);
        self.effects.engine_change(EngineChange::AccountDeleted { account_id: account_id.to_owned() });
        Ok(())
    }
}
