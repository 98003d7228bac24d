"""`python manage.py create_api_token EMAIL WORKSPACE_SLUG [--name NAME]`: print a new API token."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Membership, Role
from config.lib.names import name_direction_problem
from workflows.integrations.api_auth import token_create


class Command(BaseCommand):
    help = "Create a workspace API token for scripts and ops, and print it (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="a member of the workspace with the admin or owner role")
        parser.add_argument("workspace", help="the workspace's slug")
        parser.add_argument(
            "--name", default="Created with manage.py", help="what the token is for"
        )

    def handle(self, *args: object, **options: str) -> None:
        membership = (
            Membership.objects.select_related("user", "workspace")
            .filter(user__email__iexact=options["email"], workspace__slug=options["workspace"])
            .first()
        )
        if membership is None:
            raise CommandError(
                f"{options['email']} is not a member of a workspace “{options['workspace']}”."
            )
        if not membership.allows(Role.ADMIN):
            raise CommandError(
                f"{options['email']} is {membership.role} there; tokens need an admin or owner."
            )
        if name_direction_problem(options["name"]):
            raise CommandError(name_direction_problem(options["name"]))
        made = token_create(
            workspace=membership.workspace, name=options["name"], user=membership.user
        )
        self.stdout.write(made.value)
