"""Revenue events in batches.

- A permission to record revenue events, which an operator grants to a service account that is
  not staff (the ad server).
- Entries balance by a check per INSERT statement instead of one per posting: the postings each
  statement inserts (its transition table) must sum to zero per entry and currency. Postings are
  append-only (migration 0002), so an entry balanced before a statement is balanced after it, and
  the books balance after every statement, at commit too. Migration 0002's deferred constraint
  trigger re-summed an entry for each of its postings at commit: for a batch of 1,000 events
  (about 4,200 postings) it added a third to a half to the time of the inserts; this check takes
  about 2 ms (bench/README.md, "Ledger in batches"). The postings of one entry are now inserted
  in one statement, as the ledger does.
"""

from django.db import migrations

PER_STATEMENT_CHECK = """
CREATE FUNCTION remix_posting_entries_balance() RETURNS trigger AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT entry_id, currency, SUM(amount_minor) AS total INTO unbalanced
      FROM inserted
     GROUP BY entry_id, currency
    HAVING SUM(amount_minor) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: % % left over',
            unbalanced.entry_id, unbalanced.total, unbalanced.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER remix_posting_entries_balance
    AFTER INSERT ON remix_posting
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION remix_posting_entries_balance();
"""
DROP_PER_STATEMENT_CHECK = """
DROP TRIGGER IF EXISTS remix_posting_entries_balance ON remix_posting;
DROP FUNCTION IF EXISTS remix_posting_entries_balance();
"""

# Migration 0002's check, restored when this migration is reversed (bench/ledger_batch.py times it).
PER_ROW_CHECK = """
CREATE FUNCTION remix_posting_entry_balances() RETURNS trigger AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT currency, SUM(amount_minor) AS total INTO unbalanced
      FROM remix_posting WHERE entry_id = NEW.entry_id
     GROUP BY currency HAVING SUM(amount_minor) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: % % left over',
            NEW.entry_id, unbalanced.total, unbalanced.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER remix_posting_entry_balances
    AFTER INSERT ON remix_posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION remix_posting_entry_balances();
"""
DROP_PER_ROW_CHECK = """
DROP TRIGGER IF EXISTS remix_posting_entry_balances ON remix_posting;
DROP FUNCTION IF EXISTS remix_posting_entry_balances();
"""


class Migration(migrations.Migration):
    dependencies = [("remix", "0002_ledger_triggers")]

    operations = [
        migrations.AlterModelOptions(
            name="revenueevent",
            options={"permissions": [("record_revenue_events", "Can record revenue events through the API")]},
        ),
        migrations.RunSQL(
            DROP_PER_ROW_CHECK + PER_STATEMENT_CHECK, DROP_PER_STATEMENT_CHECK + PER_ROW_CHECK
        ),
    ]
