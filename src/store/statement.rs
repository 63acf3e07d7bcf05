//! The two INSERTs a writer stores a batch with, and which one a batch tries first.
//!
//! Most batches hold new events only. `INSERT_NEW` stores them without looking for conflicts
//! first and returns nothing: when it succeeds, every row of the batch was inserted. If one id
//! is stored already, it fails as a whole (a unique violation; nothing is committed) and the
//! batch goes again with `INSERT_ANY`, which stores the new ids and names them. `ON CONFLICT`
//! probes the index before each row (a second descent), and `RETURNING` sends every id back:
//! for a 32-event batch that is ~20 % of the backend's CPU and ~12 % of the round trip
//! (`loadtest/README.md`, issue #8, tenth round). After a batch that met a duplicate, the next
//! one tries `INSERT_ANY` first, so a stream of redeliveries costs one round trip per batch as
//! before, and only the first batch of such a stream pays two.

use postgres::{Client, Statement};

/// The rows of one batch, from parameter arrays: one entry per distinct event id, in id order,
/// so two transactions inserting overlapping ids (two writers, or two instances) take the index
/// locks in the same order and cannot deadlock. The `unnest`s sit in the select list, where
/// PostgreSQL steps them in lockstep (a `ProjectSet` node, `EXPLAIN VERBOSE`) and hands each
/// row on in array order as it comes: `unnest(...) WITH ORDINALITY` in `FROM` stored every
/// column in a tuplestore first and needed `ORDER BY` for the order, ~9 % more of the
/// backend's CPU per batch (tenth round). Were the order ever lost, two overlapping batches
/// could deadlock: PostgreSQL then fails one, which is answered 503, never 200.
macro_rules! insert_batch {
    () => {
        "INSERT INTO webhook_events (event_id, event_type, category, action, object_id, \
         amount_cents, currency, amount, metadata, provider_ts, source) \
         SELECT e.id, e.event_type, e.category, e.action, e.object_id, e.amount_cents, \
         e.currency, e.amount::numeric(20,4), e.metadata::jsonb, to_timestamp(e.provider_ts), \
         e.source \
         FROM (SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS event_type, \
         unnest($3::text[]) AS category, unnest($4::text[]) AS action, \
         unnest($5::text[]) AS object_id, unnest($6::int8[]) AS amount_cents, \
         unnest($7::text[]) AS currency, unnest($8::text[]) AS amount, \
         unnest($9::text[]) AS metadata, unnest($10::int8[]) AS provider_ts, \
         unnest($11::text[]) AS source) AS e"
    };
}

/// Inserts every row or none: fails with a unique violation if one id is stored already.
const INSERT_NEW: &str = insert_batch!();

/// Inserts the rows whose ids are not stored yet and returns their ids.
///
/// A duplicate is locked, not skipped: `DO UPDATE ... WHERE false` locks the existing row and
/// updates nothing, so RETURNING still lists only inserted ids. The lock writes WAL under a
/// transaction id, and only a transaction that did both waits for the synchronous standby at
/// commit (`RecordTransactionCommit`); `DO NOTHING`, even with `pg_current_xact_id()` in the
/// statement, writes no WAL for a duplicate and commits without waiting (tested), which would
/// answer 200 for a row that may exist on the primary alone. Ids are distinct within a batch,
/// so no row is affected twice.
const INSERT_ANY: &str = concat!(
    insert_batch!(),
    " ON CONFLICT (event_id) DO UPDATE SET event_id = EXCLUDED.event_id WHERE false",
    " RETURNING event_id"
);

/// Both statements, prepared on one connection.
pub struct Prepared {
    pub new: Statement,
    pub any: Statement,
}

impl Prepared {
    pub fn on(client: &mut Client) -> Result<Prepared, postgres::Error> {
        Ok(Prepared {
            new: client.prepare(INSERT_NEW)?,
            any: client.prepare(INSERT_ANY)?,
        })
    }
}

/// Which statement a writer's next batch tries first.
#[derive(Debug, Default)]
pub struct FirstTry {
    /// The last batch had an event that was stored already.
    met_duplicate: bool,
    /// `INSERT_NEW` once reported fewer rows than it was given (a trigger on the table that
    /// skips rows): it cannot tell which, so it is not used again.
    new_is_unreliable: bool,
}

impl FirstTry {
    /// Whether the next batch tries `INSERT_NEW`.
    pub fn new_only(&self) -> bool {
        !self.met_duplicate && !self.new_is_unreliable
    }

    /// A batch was stored; `met_duplicate`: one of its ids was stored before.
    pub fn stored(&mut self, met_duplicate: bool) {
        self.met_duplicate = met_duplicate;
    }

    /// `INSERT_NEW` inserted fewer rows than it was given.
    pub fn new_miscounted(&mut self) {
        self.new_is_unreliable = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_statements_differ_only_in_their_conflict_clause() {
        let tail = INSERT_ANY.strip_prefix(INSERT_NEW).unwrap();
        assert!(
            tail.starts_with(" ON CONFLICT (event_id) DO UPDATE"),
            "{tail}"
        );
        assert!(tail.ends_with("RETURNING event_id"), "{tail}");
        assert!(!INSERT_NEW.contains("ON CONFLICT") && !INSERT_NEW.contains("RETURNING"));
    }

    #[test]
    fn a_duplicate_sends_the_next_batch_to_insert_any_until_one_is_clean() {
        let mut first = FirstTry::default();
        assert!(first.new_only(), "a fresh writer expects new events");
        first.stored(true);
        assert!(!first.new_only());
        first.stored(true);
        assert!(!first.new_only(), "redeliveries keep coming");
        first.stored(false);
        assert!(first.new_only());
    }

    #[test]
    fn a_miscount_retires_insert_new_for_good() {
        let mut first = FirstTry::default();
        first.new_miscounted();
        first.stored(false);
        assert!(!first.new_only());
    }
}
