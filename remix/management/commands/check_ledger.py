from django.core.management.base import BaseCommand, CommandError

from remix.ledger import check_books


class Command(BaseCommand):
    help = "Checks that every journal entry, and so the whole ledger, sums to zero per currency."

    def handle(self, *args, **options):
        result = check_books()
        self.stdout.write(
            f"entries={result.entries} postings={result.postings} "
            f"currency_totals={result.currency_totals} events_without_entry={result.events_without_entry}"
        )
        if not result.balanced:
            raise CommandError(f"the books do not balance; unbalanced entries: {result.unbalanced_entries}")
        self.stdout.write("the books balance")
