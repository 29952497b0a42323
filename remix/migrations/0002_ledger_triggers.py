"""The database keeps the books honest on its own.

- Every journal entry's postings sum to zero per currency: a deferred constraint trigger checks the
  entry at commit, so the postings of one entry can be inserted one by one inside the transaction.
- Postings are append-only: UPDATE and DELETE are refused (TRUNCATE, used only by test teardown, is
  not a row operation and is unaffected).
"""

from django.db import migrations

BALANCE_CHECK = """
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

CREATE FUNCTION remix_posting_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'postings are append-only; write a reversing entry instead'
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER remix_posting_append_only
    BEFORE UPDATE OR DELETE ON remix_posting
    FOR EACH ROW EXECUTE FUNCTION remix_posting_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS remix_posting_append_only ON remix_posting;
DROP FUNCTION IF EXISTS remix_posting_append_only();
DROP TRIGGER IF EXISTS remix_posting_entry_balances ON remix_posting;
DROP FUNCTION IF EXISTS remix_posting_entry_balances();
"""


class Migration(migrations.Migration):
    dependencies = [("remix", "0001_initial")]
    operations = [migrations.RunSQL(BALANCE_CHECK, DROP)]
