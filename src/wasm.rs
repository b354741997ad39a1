//! The JavaScript binding: translation only. Each method decodes its JS arguments, makes one
//! core call and encodes the result. Bad arguments throw an `Error` with a `code` property;
//! nothing here panics on input.

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::persist::keys::ACCOUNT_PREFIX;
use crate::persist::LoadedRecord;
use crate::{AssignmentQuery, EngineConfig, EngineError, ExplainQuery, Input, ReportPageQuery, StoredRecord, StoredRecordJson};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("binding_types.d.ts");

/// 9999-12-31T23:59:59.999Z: the latest `now` accepted. Later times leave no room for the
/// engine's deadlines (now + an interval) below 2^53, where JavaScript numbers stop being exact.
const LATEST_NOW: f64 = 253_402_300_799_999.0;

/// The license engine. Drive it with `handleInput`, then drain `pollOutputs` (or `pollOutput`
/// until it returns `{type: "timeout"}`).
#[wasm_bindgen(js_name = Engine)]
pub struct WasmEngine {
    inner: crate::Engine,
}

#[wasm_bindgen(js_class = Engine)]
impl WasmEngine {
    /// Creates an engine with no accounts. `now` is `Date.now()`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "EngineConfig")] config: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<WasmEngine, JsValue> {
        let config: EngineConfig = decode("config", config)?;
        let inner = crate::Engine::new(config, millis(&now)?).map_err(engine_error)?;
        Ok(Self { inner })
    }

    /// Rebuilds an engine from every record the store holds (as written from `persist` outputs), at
    /// start-up: `Engine.restore(config, await store.load({ json: true }), Date.now())`. A record is
    /// `{key, value}`, or `{key, json}` with the value as the JSON text a store kept (the SQLite and
    /// PostgreSQL stores give that when asked: read straight into the engine's records, it restores
    /// a large store several times faster).
    pub fn restore(
        #[wasm_bindgen(unchecked_param_type = "EngineConfig")] config: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Array<StoredRecord | StoredRecordJson>")] records: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<WasmEngine, JsValue> {
        let config: EngineConfig = decode("config", config)?;
        let now = millis(&now)?;
        if !js_sys::Array::is_array(&records) {
            return Err(error("INVALID_INPUT", "invalid records: expected an array"));
        }
        reserve_for_records(&records);
        // The account records first (the others refer to them), then each other record decoded as
        // it is loaded: the store's records are never all held as JSON trees in linear memory.
        let items = js_sys::Array::from(&records);
        let reader = JsonReader::new();
        let account_prefix: Text = JsValue::from_str(ACCOUNT_PREFIX).unchecked_into();
        let is_account = |item: &JsValue| {
            let key = js_sys::Reflect::get(item, &reader.key_field).unwrap_or(JsValue::UNDEFINED);
            key.is_string() && key.unchecked_ref::<Text>().starts_with(&account_prefix)
        };
        // One look at each key (compared in JavaScript, not copied): the account records are decoded now, the
        // others kept (as handles) for the loader.
        let (accounts, others): (Vec<JsValue>, Vec<JsValue>) = items.iter().partition(is_account);
        let accounts = accounts.into_iter().map(|item| reader.loaded_record(item)).collect::<Result<Vec<_>, _>>()?;
        let mut refused = None;
        let rest = others.into_iter().map_while(|item| match reader.loaded_record(item) {
            Ok(record) => Some(record),
            Err(e) => {
                refused = Some(e);
                None
            }
        });
        let restored = crate::Engine::restore_in_order(config, accounts, rest, now);
        if let Some(e) = refused {
            return Err(e);
        }
        Ok(Self { inner: restored.map_err(engine_error)? })
    }

    /// Takes over one account from the store's records when this instance acquires its lease:
    /// pass `store.loadAccount(accountId)` (the account's records and those of no account; every
    /// record, as `store.load()` returns them, works too; after another adoption, its own records
    /// alone do: `store.loadAccount(accountId, { shared: false })`); then drain `pollOutputs`.
    /// Records may carry their value as JSON text, as for `restore` (`{ json: true }`).
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn adopt(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Array<StoredRecord | StoredRecordJson>")] records: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<(), JsValue> {
        let account_id = string("accountId", &accountId)?;
        if !js_sys::Array::is_array(&records) {
            return Err(error("INVALID_INPUT", "invalid records: expected an array"));
        }
        reserve_for_records(&records);
        let reader = JsonReader::new();
        let records = js_sys::Array::from(&records).iter().map(|item| reader.loaded_record(item)).collect::<Result<Vec<_>, _>>()?;
        let now = millis(&now)?;
        self.inner.adopt(&account_id, records, now).map_err(engine_error)
    }

    /// Stops driving an account without deleting its records, at once when its lease is lost.
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn release(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<(), JsValue> {
        let account_id = string("accountId", &accountId)?;
        let now = millis(&now)?;
        self.inner.release(&account_id, now).map_err(engine_error)
    }

    /// Feeds one input, then drain `pollOutputs`. Throws on bad input and changes nothing.
    #[wasm_bindgen(js_name = handleInput)]
    pub fn handle_input(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Input")] input: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<(), JsValue> {
        let now = millis(&now)?;
        let input = JsonReader::new().input("input", &input)?;
        self.inner.handle_input(input, now).map_err(engine_error)
    }

    /// What applying `inputs` (in order) would do — licenses assigned and released, shortfalls,
    /// requests and about how long they take, in total, per account and per app — without doing
    /// it: nothing changes and nothing is output. Call before applying an administrator's change
    /// (scope edit, Reconcile, Clean Up, reclaim) to show it and ask; then `handleInput` the same
    /// inputs. Throws what `handleInput` would throw for them.
    #[wasm_bindgen(unchecked_return_type = "PreviewReport")]
    pub fn preview(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Input[]")] inputs: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<JsValue, JsValue> {
        let now = millis(&now)?;
        let inputs = decode_inputs(inputs)?;
        encode(&self.inner.preview(inputs, now).map_err(engine_error)?)
    }

    /// The next output, one at a time; call until it returns `{type: "timeout", at}`.
    /// `pollOutputs` does the same in one call.
    #[wasm_bindgen(js_name = pollOutput, unchecked_return_type = "Output")]
    pub fn poll_output(&mut self, #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue) -> Result<JsValue, JsValue> {
        let now = millis(&now)?;
        encode(&self.inner.poll_output(now))
    }

    /// The outputs due now, in order, ending with `{type: "timeout", at}`: what calling
    /// `pollOutput` until the timeout returns, in one crossing of the boundary. A batch that
    /// reaches 5,000 store records (the first full refresh of a large account) ends early without
    /// the timeout: handle it and call again until a batch ends with the timeout. Call after each
    /// `handleInput`, `handleNotification`, `adopt` and `release` (instead of a `pollOutput` loop).
    #[wasm_bindgen(js_name = pollOutputs, unchecked_return_type = "Output[]")]
    pub fn poll_outputs(&mut self, #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue) -> Result<JsValue, JsValue> {
        let now = millis(&now)?;
        encode(&self.inner.drain_outputs(now))
    }

    /// Every account with its status.
    #[wasm_bindgen(unchecked_return_type = "AccountView[]")]
    pub fn accounts(&self) -> Result<JsValue, JsValue> {
        encode(&self.inner.accounts())
    }

    /// License counts per app of one account.
    #[wasm_bindgen(js_name = appCounts, unchecked_return_type = "AppCountView[]")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn app_counts(&self, #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue) -> Result<JsValue, JsValue> {
        let account_id = string("accountId", &accountId)?;
        encode(&self.inner.app_counts(&account_id).map_err(engine_error)?)
    }

    /// License counts per app across every account, with each account's share.
    #[wasm_bindgen(js_name = appTotals, unchecked_return_type = "AppTotalView[]")]
    pub fn app_totals(&self) -> Result<JsValue, JsValue> {
        encode(&self.inner.app_totals())
    }

    /// Assignments of one account, filtered and paged.
    #[wasm_bindgen(unchecked_return_type = "AssignmentPage")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn assignments(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "AssignmentQuery")] query: Option<js_sys::Object>,
    ) -> Result<JsValue, JsValue> {
        let account_id = string("accountId", &accountId)?;
        let query: AssignmentQuery = match query {
            None => AssignmentQuery::default(),
            Some(query) => decode("query", query.into())?,
        };
        encode(&self.inner.assignments(&account_id, &query).map_err(engine_error)?)
    }

    /// The license usage per app of one account (`null`: of every account): purchased, used by
    /// this instance, used by others, pending, available.
    #[wasm_bindgen(js_name = appReport, unchecked_return_type = "AppReportRow[]")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn app_report(&self, #[wasm_bindgen(unchecked_param_type = "string | null")] accountId: JsValue) -> Result<JsValue, JsValue> {
        let account_id = optional_string("accountId", &accountId)?;
        encode(&self.inner.app_report(account_id.as_deref()).map_err(engine_error)?)
    }

    /// One page of the assignment report of one account (`null`: of every account), after the
    /// cursor `query.after` (the previous page's `next`).
    #[wasm_bindgen(js_name = assignmentReport, unchecked_return_type = "AssignmentReportPage")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn assignment_report(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | null")] accountId: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ReportPageQuery")] query: Option<js_sys::Object>,
    ) -> Result<JsValue, JsValue> {
        let account_id = optional_string("accountId", &accountId)?;
        let query: ReportPageQuery = match query {
            None => ReportPageQuery::default(),
            Some(query) => decode("query", query.into())?,
        };
        encode(&self.inner.assignment_report(account_id.as_deref(), &query).map_err(engine_error)?)
    }

    /// Handles a notification Apple POSTed to `<notifications.url>/<accountId>`; returns the HTTP
    /// status to answer. Then drain `pollOutputs`. Forged, malformed or duplicate notifications
    /// change nothing.
    #[wasm_bindgen(js_name = handleNotification)]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn handle_notification(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | null")] authorization: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] body: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] now: JsValue,
    ) -> Result<u16, JsValue> {
        let account_id = string("accountId", &accountId)?;
        let authorization = optional_string("authorization", &authorization)?;
        let body = string("body", &body)?;
        let now = millis(&now)?;
        Ok(self.inner.handle_notification(&account_id, authorization.as_deref(), &body, now))
    }

    /// Operations of an account Apple has not finished.
    #[wasm_bindgen(js_name = pendingOperations, unchecked_return_type = "PendingOperation[]")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn pending_operations(&self, #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue) -> Result<JsValue, JsValue> {
        let account_id = string("accountId", &accountId)?;
        encode(&self.inner.pending_operations(&account_id).map_err(engine_error)?)
    }

    /// Why a device or user has or lacks a license of an app.
    #[wasm_bindgen(unchecked_return_type = "LicenseExplanation")]
    #[allow(non_snake_case)] // parameter names are the TypeScript ones
    pub fn explain(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ExplainQuery")] query: JsValue,
    ) -> Result<JsValue, JsValue> {
        let account_id = string("accountId", &accountId)?;
        let query: ExplainQuery = decode("query", query)?;
        encode(&self.inner.explain(&account_id, &query).map_err(engine_error)?)
    }

    /// When the engine next wants to be called, and why.
    #[wasm_bindgen(js_name = nextWakeup, unchecked_return_type = "Wakeup")]
    pub fn next_wakeup(&self) -> Result<JsValue, JsValue> {
        encode(&self.inner.next_wakeup())
    }

    /// Counters: requests issued, answers handled, unknown answers dropped, requests in flight.
    #[wasm_bindgen(unchecked_return_type = "EngineStats")]
    pub fn stats(&self) -> Result<JsValue, JsValue> {
        encode(&self.inner.stats())
    }
}

/// Decodes an sToken without adding it: organization name and expiry. Throws if malformed.
#[wasm_bindgen(js_name = decodeToken, unchecked_return_type = "TokenInfo")]
pub fn decode_token(#[wasm_bindgen(unchecked_param_type = "string")] token: JsValue) -> Result<JsValue, JsValue> {
    let text = string("token", &token)?;
    let token = crate::apple::token::SToken::decode(&text).map_err(|e| engine_error(e.into()))?;
    encode(&crate::TokenInfo { org_name: token.org_name.clone(), expires_at: token.expires_at })
}

/// The account a stored record belongs to (the engine's key scheme, so that hosts sharing one store
/// fence writes by account without knowing it): its id; `null` for a record of no account (device
/// and user facts, settings); `undefined` when the key alone cannot say — a `policy/` record names its
/// account only in its value: pass the value (for a delete, the value stored under the key, or `null`).
#[wasm_bindgen(js_name = accountOfRecord, unchecked_return_type = "string | null | undefined")]
pub fn account_of_record(
    #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "unknown")] value: JsValue,
) -> Result<JsValue, JsValue> {
    use crate::persist::keys::RecordAccount;
    let key = string("key", &key)?;
    // Only the value's accountId matters: it is read alone, not the whole value.
    let value = if value.is_undefined() {
        None
    } else if value.is_object() {
        let id = js_sys::Reflect::get(&value, &JsValue::from_str("accountId")).ok().and_then(|id| id.as_string());
        Some(id.map_or(serde_json::Value::Null, |id| serde_json::json!({ "accountId": id })))
    } else {
        Some(serde_json::Value::Null)
    };
    Ok(match crate::persist::keys::account_of_record(&key, value.as_ref()) {
        RecordAccount::Account(id) => JsValue::from_str(&id),
        RecordAccount::NoAccount => JsValue::NULL,
        RecordAccount::InValue => JsValue::UNDEFINED,
    })
}

/// Where the records `Engine.adopt(accountId, …)` keeps are stored — the account's own and, unless
/// `shared` is `false`, those of no account (device and user facts, settings: an engine needs them with
/// the first of several adoptions only) — as exact keys, key prefixes (each a range scan) and prefixes
/// whose records name their account in a value field (policies): what `store.loadAccount(accountId,
/// { shared })` reads.
#[wasm_bindgen(js_name = accountKeyRanges, unchecked_return_type = "AccountKeyRanges")]
#[allow(non_snake_case)] // parameter names are the TypeScript ones
pub fn account_key_ranges(
    #[wasm_bindgen(unchecked_param_type = "string")] accountId: JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "boolean")] shared: JsValue,
) -> Result<JsValue, JsValue> {
    let account_id = string("accountId", &accountId)?;
    let shared = if shared.is_undefined() {
        true
    } else {
        shared.as_bool().ok_or_else(|| error("INVALID_INPUT", "shared must be a boolean"))?
    };
    encode(&crate::persist::keys::account_key_ranges(&account_id, shared))
}

fn error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &JsValue::from_str("code"), &JsValue::from_str(code));
    error.into()
}

fn engine_error(e: EngineError) -> JsValue {
    error(e.code(), &e.to_string())
}

/// Decodes an object argument. Only plain objects are accepted: serde would otherwise read an
/// array as a struct (`["x"]` as its first field), and a `Map` or `Date` is never meant.
fn decode<T: DeserializeOwned>(what: &str, value: JsValue) -> Result<T, JsValue> {
    let reader = JsonReader::new();
    if !reader.is_plain_object(&value) {
        return Err(error("INVALID_INPUT", &format!("invalid {what}: expected a plain object")));
    }
    from_json(what, reader.read(&value, 0).map_err(|e| invalid(what, &e))?)
}

/// Linear memory a restored record takes, about (measured: 360 B per record of the state built from
/// the benchmark world of row 7, 422,041 records; each record is decoded only as it is loaded).
const RESTORE_BYTES_PER_RECORD: usize = 384;

/// Grows linear memory once for `records` (a JS array of store records) before they are decoded:
/// the allocator otherwise grows it a few pages at a time, and each grow makes V8 replace the memory's
/// buffer and account for it, at a cost that rises with the JS heap — the records themselves. Restore
/// went from superlinear to linear with this (BENCHMARKS.md, row 7). The memory is freed at once and
/// the allocator reuses it.
fn reserve_for_records(records: &JsValue) {
    if let Some(array) = records.dyn_ref::<js_sys::Array>() {
        let bytes = (array.length() as usize).saturating_mul(RESTORE_BYTES_PER_RECORD);
        // black_box: an allocation nobody uses would be optimized away.
        drop(std::hint::black_box(Vec::<u8>::with_capacity(bytes)));
    }
}

impl JsonReader {
    /// One store record (a plain object) of the `records` argument: `{key, value}`, or `{key, json}`
    /// with the value as the JSON text a store kept, read straight into the record's type.
    fn loaded_record(&self, item: JsValue) -> Result<LoadedRecord, JsValue> {
        if !self.is_plain_object(&item) {
            return Err(error("INVALID_INPUT", "invalid records: expected a plain object"));
        }
        // `{key, json}` as a store gives it, read field by field (what StoredRecordJson's reader reads; a record of
        // another shape goes the general way below, which names what is wrong with it).
        let get = |field: &JsValue| js_sys::Reflect::get(&item, field).unwrap_or(JsValue::UNDEFINED);
        let (key, json) = (get(&self.key_field), get(&self.json_field));
        if let (Some(key), Some(json)) = (self.string(&key), self.string(&json)) {
            if get(&self.value_field).is_undefined() {
                let key = key.map_err(|e| invalid("records", &e))?;
                let json = json.map_err(|e| invalid("records", &e))?;
                return Ok(StoredRecordJson { key, json }.into());
            }
        }
        let fields = self.read(&item, 0).map_err(|e| invalid("records", &e))?;
        if fields.get("json").is_none() {
            return from_json::<StoredRecord>("records", fields).map(Into::into);
        }
        if fields.get("value").is_some() {
            return Err(invalid("records", "a record has both a value and its json"));
        }
        from_json::<StoredRecordJson>("records", fields).map(Into::into)
    }
}

/// Decodes an array of inputs.
fn decode_inputs(value: JsValue) -> Result<Vec<Input>, JsValue> {
    if !js_sys::Array::is_array(&value) {
        return Err(error("INVALID_INPUT", "invalid inputs: expected an array"));
    }
    let reader = JsonReader::new();
    js_sys::Array::from(&value).iter().map(|item| reader.input("inputs", &item)).collect()
}

/// The fields of inputs that list targets — a policy's scope, up to hundreds of thousands of serial
/// numbers: read from JavaScript straight into strings, never as a JSON tree as the other fields
/// are. By input type: the path to the object holding the lists, and their names.
const TARGET_LISTS: &[(&str, &[&str], &[&str])] =
    &[("setPolicy", &["policy"], &["targets"]), ("updatePolicyTargets", &[], &["add", "remove"])];

/// Target lists read out of an input (see [`TARGET_LISTS`]), by field name.
type TargetLists = Vec<(String, Vec<String>)>;

impl JsonReader {
    /// One input (a plain object), its target lists read as strings.
    fn input(&self, what: &str, value: &JsValue) -> Result<Input, JsValue> {
        if !self.is_plain_object(value) {
            return Err(error("INVALID_INPUT", &format!("invalid {what}: expected a plain object")));
        }
        let tag = js_sys::Reflect::get(value, &self.type_field).ok().and_then(|tag| tag.as_string());
        let mut lists = TargetLists::new();
        let tree = match TARGET_LISTS.iter().find(|(input, ..)| Some(*input) == tag.as_deref()) {
            Some((_, path, names)) => self.read_with_lists(value, 0, path, names, &mut lists),
            None => self.read(value, 0),
        };
        let mut input: Input = from_json(what, tree.map_err(|e| invalid(what, &e))?)?;
        for (name, list) in lists {
            match (&mut input, name.as_str()) {
                (Input::SetPolicy { policy }, "targets") => policy.targets = list.into_iter().collect(),
                (Input::UpdatePolicyTargets { add, .. }, "add") => *add = list,
                (Input::UpdatePolicyTargets { remove, .. }, "remove") => *remove = list,
                _ => {} // TARGET_LISTS names no other
            }
        }
        Ok(input)
    }

    /// Reads `value` as [`JsonReader::read`] does, but the arrays `names` of the object at `path`
    /// within it go to `lists` as strings (left in the tree empty, for the type's reader).
    fn read_with_lists(
        &self,
        value: &JsValue,
        depth: u32,
        path: &[&str],
        names: &[&str],
        lists: &mut TargetLists,
    ) -> Result<serde_json::Value, String> {
        if !self.is_plain_object(value) {
            return self.read(value, depth);
        }
        self.read_object(value, depth, |reader, key, item| match path {
            [first, rest @ ..] if *first == key => Some(reader.read_with_lists(item, depth + 1, rest, names, lists)),
            [] if names.contains(&key) && js_sys::Array::is_array(item) => Some(reader.strings(item).map(|list| {
                lists.push((key.to_owned(), list));
                serde_json::Value::Array(Vec::new())
            })),
            _ => None,
        })
    }

    /// An array whose elements must all be strings.
    fn strings(&self, array: &JsValue) -> Result<Vec<String>, String> {
        let not_a_string = |index: usize| Err(format!("invalid type: element {index} of a target list is not a string"));
        js_sys::Array::from(array)
            .iter()
            .enumerate()
            .map(|(index, item)| self.string(&item).unwrap_or_else(|| not_a_string(index)))
            .collect()
    }
}

fn from_json<T: DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T, JsValue> {
    serde_json::from_value(value).map_err(|e| invalid(what, &e.to_string()))
}

fn invalid(what: &str, reason: &str) -> JsValue {
    error("INVALID_INPUT", &format!("invalid {what}: {reason}"))
}

/// Deepest nesting of arrays and objects read from JavaScript (serde_json's own limit): a
/// cyclic object fails here instead of exhausting the stack.
const MAX_DEPTH: u32 = 128;

/// Reads a JavaScript argument as JSON data, one property at a time: strings (Apple's page
/// bodies among them) are copied once, never escaped and re-parsed. Stricter than
/// `JSON.stringify`: a number that is not finite, a `BigInt`, a function, a symbol or an object
/// that is not plain is refused instead of silently becoming `null`, `{}` or an ISO string.
/// `undefined` properties are left out, as if absent.
struct JsonReader {
    object_prototype: JsValue,
    encoder: TextEncoder,
    /// Linear memory's buffer and its size in pages then (see [`JsonReader::memory_buffer`]).
    memory_buffer: std::cell::RefCell<Option<(usize, JsValue)>>,
    /// The property names of store records and the tag of inputs.
    key_field: JsValue,
    type_field: JsValue,
    value_field: JsValue,
    json_field: JsValue,
}

#[wasm_bindgen]
extern "C" {
    /// The platform's UTF-8 encoder (browsers, Node ≥ 11).
    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    /// A JavaScript string, compared where it is (js-sys's `JsString::starts_with` copies its Rust argument over).
    type Text;
    #[wasm_bindgen(method, js_name = startsWith)]
    fn starts_with(this: &Text, prefix: &Text) -> bool;
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &TextEncoder, text: &JsValue, destination: &js_sys::Uint8Array) -> EncodeIntoResult;
    /// What `encodeInto` did.
    type EncodeIntoResult;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeIntoResult) -> u32;
}

/// Strings at least this long (UTF-16 units) are encoded by `TextEncoder` in one native call:
/// wasm-bindgen's own conversion copies ASCII one character at a time in JavaScript, which
/// costs about 0.4 s per full sync of 1,000,000 assignments (77 MB of page bodies).
const LONG_STRING: u32 = 64;

impl JsonReader {
    fn new() -> Self {
        Self {
            object_prototype: js_sys::Object::get_prototype_of(&js_sys::Object::new().into()).into(),
            encoder: TextEncoder::new(),
            memory_buffer: std::cell::RefCell::new(None),
            key_field: JsValue::from_str("key"),
            type_field: JsValue::from_str("type"),
            value_field: JsValue::from_str("value"),
            json_field: JsValue::from_str("json"),
        }
    }

    /// A JavaScript string as a Rust one. A lone surrogate (not valid UTF-16) is refused: as U+FFFD two
    /// distinct ids would become one.
    fn string(&self, value: &JsValue) -> Option<Result<String, String>> {
        if !value.is_string() {
            return None;
        }
        let js = value.unchecked_ref::<js_sys::JsString>();
        let units = js.length();
        let text = if units < LONG_STRING { value.as_string() } else { self.encode_long(value, units) }?;
        // U+FFFD is rare (and never in ASCII text): only then is the original checked.
        if !text.is_ascii() && text.contains('\u{FFFD}') && !js.is_valid_utf16() {
            return Some(Err("a string holds a lone surrogate (not valid UTF-16)".to_owned()));
        }
        Some(Ok(text))
    }

    /// A long string (`units` UTF-16 units) encoded by `TextEncoder.encodeInto` straight into linear
    /// memory: one native call, and no JavaScript buffer to collect.
    fn encode_long(&self, value: &JsValue, units: u32) -> Option<String> {
        // At most 3 UTF-8 bytes per UTF-16 unit.
        let mut bytes = vec![0_u8; units as usize * 3];
        // After the allocation: growing linear memory replaces its buffer.
        let destination = js_sys::Uint8Array::new_with_byte_offset_and_length(&self.memory_buffer(), bytes.as_ptr() as u32, bytes.len() as u32);
        let written = self.encoder.encode_into(value, &destination).written();
        bytes.truncate(written as usize);
        bytes.shrink_to_fit();
        String::from_utf8(bytes).ok()
    }

    /// Linear memory's buffer, asked of JavaScript again only when memory grew (which replaces it).
    fn memory_buffer(&self) -> JsValue {
        let pages = core::arch::wasm32::memory_size(0);
        let mut cached = self.memory_buffer.borrow_mut();
        match &*cached {
            Some((at, buffer)) if *at == pages => buffer.clone(),
            _ => {
                let buffer = wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>().buffer();
                *cached = Some((pages, buffer.clone()));
                buffer
            }
        }
    }

    fn is_plain_object(&self, value: &JsValue) -> bool {
        if !value.is_object() || js_sys::Array::is_array(value) {
            return false;
        }
        let prototype: JsValue = js_sys::Object::get_prototype_of(value).into();
        prototype.is_null() || prototype == self.object_prototype
    }

    fn read(&self, value: &JsValue, depth: u32) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        // Strings first: most values are.
        if let Some(text) = self.string(value) {
            return text.map(Value::String);
        }
        if value.is_null() || value.is_undefined() {
            return Ok(Value::Null);
        }
        if let Some(flag) = value.as_bool() {
            return Ok(Value::Bool(flag));
        }
        if let Some(number) = value.as_f64() {
            // The number itself is left out of the message: formatting floats costs 15 KB of wasm.
            return json_number(number).map(Value::Number).ok_or_else(|| "a number is not finite".to_owned());
        }
        if depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        if js_sys::Array::is_array(value) {
            let array = js_sys::Array::from(value);
            return array.iter().map(|item| self.read(&item, depth + 1)).collect::<Result<_, _>>().map(Value::Array);
        }
        if !self.is_plain_object(value) {
            return Err("expected JSON data (plain objects, arrays, strings, finite numbers, booleans, null)".to_owned());
        }
        self.read_object(value, depth, |_, _, _| None)
    }

    /// The fields of a plain object, each read by `special` (given the reader, its name and value)
    /// or, when that gives `None`, as JSON.
    fn read_object(
        &self,
        value: &JsValue,
        depth: u32,
        mut special: impl FnMut(&Self, &str, &JsValue) -> Option<Result<serde_json::Value, String>>,
    ) -> Result<serde_json::Value, String> {
        let mut map = serde_json::Map::new();
        for key in js_sys::Object::keys(value.unchecked_ref::<js_sys::Object>()).iter() {
            let item = js_sys::Reflect::get(value, &key).map_err(|_| "a property could not be read".to_owned())?;
            if item.is_undefined() {
                continue;
            }
            // Object.keys yields strings only.
            let key = key.as_string().unwrap_or_default();
            let read = match special(self, &key, &item) {
                Some(read) => read?,
                None => self.read(&item, depth + 1)?,
            };
            map.insert(key, read);
        }
        Ok(serde_json::Value::Object(map))
    }
}

/// A JavaScript number as JSON: integers up to 2^53 as integers (what serde reads as `u64`
/// or `i64`), other finite numbers as floats; `None` for NaN and the infinities.
fn json_number(number: f64) -> Option<serde_json::Number> {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if number.fract() == 0.0 && number.abs() <= SAFE {
        Some(if number >= 0.0 { (number as u64).into() } else { (number as i64).into() })
    } else {
        serde_json::Number::from_f64(number)
    }
}

/// Encodes a result as JSON text parsed by `JSON.parse`: one crossing of the boundary per
/// result instead of one per property.
fn encode<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let failed = |e: &dyn std::fmt::Display| error("ENCODE_FAILED", &format!("cannot encode the result: {e}"));
    let text = serde_json::to_string(value).map_err(|e| failed(&e))?;
    js_sys::JSON::parse(&text).map_err(|_| failed(&"JSON.parse refused it"))
}

fn string(what: &str, value: &JsValue) -> Result<String, JsValue> {
    value.as_string().ok_or_else(|| error("INVALID_INPUT", &format!("{what} must be a string")))
}

/// A string, or `None` for `null` or `undefined`.
fn optional_string(what: &str, value: &JsValue) -> Result<Option<String>, JsValue> {
    if value.is_null() || value.is_undefined() {
        Ok(None)
    } else {
        string(what, value).map(Some)
    }
}

fn millis(now: &JsValue) -> Result<u64, JsValue> {
    match now.as_f64() {
        Some(n) if (0.0..=LATEST_NOW).contains(&n) => Ok(n as u64),
        _ => Err(error("INVALID_INPUT", "now must be Unix milliseconds (Date.now()) from 1970 to the year 9999")),
    }
}
