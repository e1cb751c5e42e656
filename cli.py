"""Command-line interface: ``flask --app app <command>``. The command names are a
contract (scripts and cron lines use them). Like a view, a command commits once,
after its service calls (see :mod:`services`)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from extensions import db
from models import Role
from services import accounts, demo, passwords
from services.errors import DomainError


def _ensure_secret_key() -> bool:
    """Write a random SECRET_KEY to instance/config.py unless one is configured.
    Returns True when a key was written."""
    path = Path(current_app.instance_path) / "config.py"
    if current_app.config.get("SECRET_KEY") or "SECRET_KEY" in (
        path.read_text(encoding="utf-8") if path.exists() else ""
    ):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as config:
        config.write(f"SECRET_KEY = {secrets.token_hex(32)!r}\n")
    path.chmod(0o600)
    return True


def _instance_files() -> list[Path]:
    """instance/, the search index and the SQLite database with its WAL, wherever
    the settings put them."""
    from sqlalchemy.engine import make_url

    from extensions import database_url
    from services.search import store

    paths = [Path(current_app.instance_path), Path(store.root())]
    url = make_url(database_url(current_app))
    if url.get_backend_name() == "sqlite" and url.database:
        paths += [Path(url.database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    return paths


def _make_private(paths: list[Path]) -> None:
    """Folders 0700 and files 0600 under each of ``paths``: an instance made before
    the umask was set (or copied in) stops being world-readable."""
    for path in paths:
        if path.is_symlink() or not path.exists():
            continue
        path.chmod(0o700 if path.is_dir() else 0o600)
        for folder, subfolders, files in os.walk(path):
            for name in subfolders:
                if not os.path.islink(os.path.join(folder, name)):
                    os.chmod(os.path.join(folder, name), 0o700)
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):
                    os.chmod(os.path.join(folder, name), 0o600)


@click.command("init")
@with_appcontext
def init_command():
    """Create or upgrade the database schema; create instance/ and a SECRET_KEY;
    make instance/ (and the database and index) readable by this account only."""
    from flask_migrate import upgrade

    if _ensure_secret_key():
        click.echo(f"Wrote a new SECRET_KEY to {current_app.instance_path}/config.py")
    upgrade()
    _make_private(_instance_files())
    click.echo("Database schema is up to date.")


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--display-name", default="", help="Name shown to colleagues.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user_command(username, role, display_name, password_stdin):
    """Create an account (the first admin, for instance)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = accounts.create_user(username, password, role, display_name=display_name)
    except DomainError as refused:
        raise click.ClickException(f"{refused.field}: {refused.message}") from None
    db.session.commit()
    click.echo(f"Created {user.username} ({user.role}).")


@click.command("ensure-admin")
@with_appcontext
def ensure_admin_command():
    """If no administrator exists, create ``admin`` with a one-time password, printed
    once here, that must be changed at first sign-in."""
    if accounts.admin_exists():
        click.echo("An administrator account exists already.")
        return
    password = accounts.generate_password()
    accounts.create_user(
        "admin", password, Role.ADMIN, display_name="Administrator", must_change_password=True
    )
    db.session.commit()
    click.echo("")
    click.echo("  Created the administrator account.")
    click.echo("    username: admin")
    click.echo(f"    password: {password}   (shown once; you choose a new one at first sign-in)")
    click.echo("")


@click.command("demo-data")
@with_appcontext
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--users", "user_count", type=int, default=9, show_default=True)
@click.option("--customers", "customer_count", type=int, default=0, show_default=True)
@click.option("--notes", "note_count", type=int, default=0, show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the demo users' password from stdin.")
def demo_data_command(seed, user_count, customer_count, note_count, password_stdin):
    """Generate realistic demo data (Faker zh_CN with some en_US): staff accounts,
    and with --customers/--notes customers, tags, notes and follow-up tasks."""
    password = (
        sys.stdin.readline().rstrip("\r\n") if password_stdin else accounts.generate_password()
    )
    if problem := passwords.password_problem(password):
        raise click.ClickException(f"password: {problem}")
    users = demo.generate_users(user_count, password, seed=seed)
    db.session.commit()
    for user in users:
        click.echo(f"  {user.username:<26} {user.role:<10} {user.display_name}")
    click.echo(f"Created {len(users)} users; their password: {password}")
    if customer_count:
        from extensions import refresh_statistics

        counts = demo.generate_workspace(customer_count, note_count, seed=seed, password=password)
        db.session.commit()
        refresh_statistics()
        click.echo("Created {customers} customers, {notes} notes, {tasks} follow-up tasks.".format(**counts))
        click.echo("Building the search index …")
        _rebuild_index()


def _rebuild_index() -> None:
    from services import search

    try:
        report = search.rebuild(progress=_progress)
    except search.RebuildRunning:
        raise click.ClickException("Another rebuild is running; try again when it has finished.") from None
    click.echo(f"Indexed {report.customers} customers and {report.notes} notes in {report.seconds:.1f} s "
               f"({report.size_bytes / 1e6:.1f} MB).")


def _progress(kind: str, count: int) -> None:
    if count % 50000 < 5000:
        click.echo(f"  {kind}: {count}", err=True)


@click.group("search")
def search_group():
    """The search index (S4)."""


@search_group.command("rebuild")
@with_appcontext
def search_rebuild_command():
    """Build a fresh index from the database beside the live one and swap it in;
    search keeps working meanwhile."""
    _rebuild_index()


@search_group.command("check")
@click.option("--fix", "repair", is_flag=True, help="Repair the differences found.")
@with_appcontext
def search_check_command(repair):
    """Compare the index with the database; exit status 1 when they differ (and
    --fix was not given)."""
    from services import search

    report = search.check()
    if report.unavailable:
        click.echo(f"The index is unavailable: {report.unavailable}")
        if repair:
            _rebuild_index()
            return
        sys.exit(1)
    for label, keys in (("missing from the index", report.missing), ("out of date", report.stale),
                        ("no longer in the database", report.extra)):
        if keys:
            click.echo(f"  {len(keys)} {label}: {' '.join(keys[:20])}{' …' if len(keys) > 20 else ''}")
    if report.backlog:
        click.echo(f"  {report.backlog} changes waiting in the backlog")
    if repair and (report.backlog or not report.ok):
        queued = search.fix(report)
        click.echo(f"Repaired {queued} entries.")
        waiting = search.check().backlog
        if waiting:  # another writer held the index past the lock timeout
            click.echo(f"  {waiting} changes still waiting in the backlog; run this again")
            sys.exit(1)
        return
    if report.ok:
        click.echo("The index matches the database.")
        _echo_wear(search.wear())
        return
    sys.exit(1)


def _echo_wear(wear) -> None:
    """A line per index that saves have worn enough for the nightly housekeeping to
    write it anew (see services.search.build.WORN_SHARE)."""
    for which, worn in wear.items():
        if worn.worn:
            click.echo(f"  The {which} index is worn: {worn.replaced} replaced and {worn.added} added entries "
                       f"of {worn.entries}, in {worn.segments} segments; the nightly housekeeping (or "
                       "`flask search rebuild`) writes it anew.")


@click.group("pool")
def pool_group():
    """The public pool (公海)."""


@pool_group.command("recycle")
@click.option("--dry-run", is_flag=True, help="Only print what would be recycled, and why.")
@with_appcontext
def pool_recycle_command(dry_run):
    """Return neglected customers to the pool (for cron; takes the same lease as the
    app's nightly sweep: exit status 75 while another process runs it); also applies
    the search backlog and prunes sign-in throttle rows that hold nothing back."""
    from services import pool, settings

    if dry_run:
        done = pool.recycle_due_customers(dry_run=True)
        days = settings.get("pool.recycle_days")
        for customer, clock in done:
            owner = customer.owner.username if customer.owner else "?"
            click.echo(f"  #{customer.id} {customer.name} (owner {owner}): no effective follow-up since "
                       f"{clock.started_at:%Y-%m-%d %H:%M} UTC, more than {days} days")
        click.echo(f"Would recycle {len(done)} customers.")
        return
    _run_job("pool_sweep")
    from services import nightly, search

    search.drain()  # also applies any change an earlier request left in the backlog
    nightly.prune_throttle(click.echo)


@click.group("import")
def import_group():
    """Import data from spreadsheets."""


def _import_owner(owner: str) -> str:
    """--owner as an import option: "pool", "column", or a user id."""
    from sqlalchemy import select

    from models import User
    from services import policy

    if owner in ("pool", "column"):
        return owner
    from flask_babel import gettext as _

    user = db.session.scalar(select(User).where(User.username == owner))
    if user is None or not policy.may_own_customers(user):
        raise click.BadParameter(_("%(name)s is not an active colleague who may own customers.", name=repr(owner)),
                                 param_hint="--owner")
    return str(user.id)


@import_group.command("customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row and write the rejected rows; import nothing.")
@click.option("--owner", default="pool", show_default=True,
              help="pool, column (the file's owner column), or the username of one salesperson.")
@click.option("--duplicates", type=click.Choice(["skip", "fill", "create"]), default="skip", show_default=True,
              help="What to do with rows that duplicate an existing customer.")
@click.option("--tags", type=click.Choice(["create", "drop"]), default="create", show_default=True,
              help="Create tags the office does not have yet, or leave them out.")
@click.option("--override-limit", is_flag=True, help="Let owners go over their ownership limit (recorded).")
@click.option("--lang", type=click.Choice(["zh", "en"]),
              help="Language of the messages (default: the office's, BABEL_DEFAULT_LOCALE, which messages "
                   "outside a request take).")
@with_appcontext
def import_customers_command(file, dry_run, owner, duplicates, tags, override_limit, lang):
    """Import customers from an .xlsx or .csv FILE (audited; undo it on the
    imports page within 7 days). Exit status 1 when nothing could be imported."""
    from flask_babel import force_locale

    with force_locale(lang or current_app.config["BABEL_DEFAULT_LOCALE"]):
        _import_customers(file, dry_run, owner, duplicates, tags, override_limit)


def _import_customers(file, dry_run, owner, duplicates, tags, override_limit):
    import shutil

    from flask_babel import gettext as _

    from services import import_jobs, imports

    options = {"owner": _import_owner(owner), "duplicates": duplicates, "tags": tags,
               "override_limit": override_limit}
    try:
        batch = imports.receive_file(None, file.name, lambda dest: shutil.copy(file, dest))
        imports.set_options(None, batch, {**batch.options, **options})
    except DomainError as refused:
        raise click.ClickException(refused.message) from None
    db.session.commit()
    batch_id = batch.id
    import_jobs.run(import_jobs.CHECK, batch_id, None)
    batch = _finished_step(batch_id)
    counts = batch.counts
    click.echo(_("%(rows)d rows: %(new)d new, %(duplicate)d duplicates of existing customers, "
                 "%(file_duplicate)d twice in the file, %(invalid)d rejected.",
                 **{k: counts[k] for k in ("rows", "new", "duplicate", "file_duplicate", "invalid")}))
    for over in counts.get("over_limit", []):
        click.echo("  " + _("%(name)s owns %(owned)d; +%(adding)d would pass the limit of %(limit)d.", **over))
    if dry_run or counts["invalid"]:
        rejected = imports.folder(batch) / "rejected.csv"
        rejected.write_text(imports.rejected_csv(batch), encoding="utf-8")
        click.echo(_("Rejected rows: %(path)s", path=str(rejected)))
    if dry_run:
        imports.audit_import(None, batch, dry_run=True)
        db.session.commit()
        return
    try:
        import_jobs.confirm(None, batch)
    except DomainError as refused:
        raise click.ClickException(refused.message) from None
    db.session.commit()
    _import_and_report(batch_id)


def _import_batch(batch_id: int):
    """The import BATCH of ``import resume`` and ``import undo``, once the ones
    whose process died are declared interrupted. Raises click.BadParameter (exit
    status 2) when there is no such import."""
    from flask_babel import gettext as _

    from models import ImportBatch
    from services import imports

    imports.settle_interrupted()
    db.session.commit()
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None:
        raise click.BadParameter(_("There is no import batch %(batch)d.", batch=batch_id), param_hint="BATCH")
    return batch


@import_group.command("resume")
@click.argument("batch_id", metavar="BATCH", type=int)
@click.option("--lang", type=click.Choice(["zh", "en"]), help="Language of the messages (default: the office's).")
@with_appcontext
def import_resume_command(batch_id, lang):
    """Go on with an interrupted import (its process died) after the rows it had
    imported; none is imported twice."""
    from flask_babel import force_locale

    from services import import_jobs

    with force_locale(lang or current_app.config["BABEL_DEFAULT_LOCALE"]):
        batch = _import_batch(batch_id)
        try:
            import_jobs.resume(None, batch)
        except DomainError as refused:
            raise click.ClickException(refused.message) from None
        db.session.commit()
        _import_and_report(batch_id)


@import_group.command("undo")
@click.argument("batch_id", metavar="BATCH", type=int)
@click.option("--lang", type=click.Choice(["zh", "en"]), help="Language of the messages (default: the office's).")
@with_appcontext
def import_undo_command(batch_id, lang):
    """Undo an import (finished, stopped or interrupted, within 7 days): archive the
    customers it created, put back what it filled in."""
    from flask_babel import force_locale

    from services.import_apply import undo_import, undone_text

    with force_locale(lang or current_app.config["BABEL_DEFAULT_LOCALE"]):
        batch = _import_batch(batch_id)
        try:
            counts = undo_import(None, batch)
        except DomainError as refused:
            raise click.ClickException(refused.message) from None
        db.session.commit()
        click.echo(str(undone_text(batch, counts)))


def _import_and_report(batch_id: int) -> None:
    """Run the import of a confirmed (or resumed) batch and print its counts."""
    from flask_babel import gettext as _

    from services import import_jobs

    import_jobs.run(import_jobs.IMPORT, batch_id, None)
    counts = _finished_step(batch_id).counts
    click.echo(_("Imported: %(created)d created, %(filled)d filled, %(skipped)d skipped, %(rejected)d rejected "
                 "(batch %(batch)d).", batch=batch_id,
                 **{k: counts[k] for k in ("created", "filled", "skipped", "rejected")}))


def _finished_step(batch_id: int):
    from models import ImportBatch, ImportStatus

    batch = db.session.get_one(ImportBatch, batch_id)
    if batch.status == ImportStatus.FAILED:
        raise click.ClickException(batch.error)
    return batch


# Exit status when another process holds the job's lease (EX_TEMPFAIL: try again later).
HELD_EXIT_STATUS = 75


def _run_job(name: str, **options):
    """Run nightly job ``name`` now under its lease, echoing what it does. Exits
    with HELD_EXIT_STATUS when another process holds the lease, 1 when it fails."""
    from services import nightly

    outcome = nightly.run(name, force=True, started_by="cli", echo=click.echo, **options)
    if not outcome.ran:
        click.echo(f"{name}: another process is running it ({outcome.held_by}); nothing done.", err=True)
        sys.exit(HELD_EXIT_STATUS)
    if not outcome.ok:
        raise click.ClickException(outcome.message)
    return outcome


@click.group("backup")
def backup_group():
    """Backups of the database and the instance settings (D2)."""


def _backup_folder() -> Path:
    from services import nightly

    return nightly.backup_folder()


def _backup_database():
    from services import backup_db, nightly

    try:
        return nightly.configured_database()
    except backup_db.BackupError as refused:
        raise click.ClickException(str(refused)) from None


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@backup_group.command("create")
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Write here instead of BACKUP_DIR (instance/backups).")
@with_appcontext
def backup_create_command(folder):
    """Copy the database while the app keeps running, with its manifest and
    instance/config.py, into one .tar.gz; verify it; then rotate the backups in that
    folder. Takes the same lease as the app's nightly backup. Exit status 1 when no
    backup could be made or it does not verify, 75 while another process backs up."""
    _run_job("backup", folder=folder, actor_name="cli", in_child=False)


@backup_group.command("list")
@with_appcontext
def backup_list_command():
    """The backups in BACKUP_DIR, newest first."""
    from services import backup

    folder = _backup_folder()
    found = backup.list_backups(folder)
    if not found:
        click.echo(f"No backups in {folder}.")
    states = {True: "verified", False: "FAILED verify", None: "not verified"}
    for item in found:
        click.echo(f"{item.name}  {item.created:%Y-%m-%d %H:%M:%S} UTC  {_megabytes(item.size):>10}  "
                   f"{states[item.verified]}")


@backup_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def backup_verify_command(file):
    """Open a backup, check its checksum and its database (SQLite: integrity check
    and row counts; PostgreSQL: pg_restore --list). Exit status 1 when it is bad."""
    from services import backup

    result = backup.verify(file)
    for problem in result.problems:
        click.echo(f"  {problem}")
    if not result.ok:
        click.echo(f"{file.name}: BAD")
        sys.exit(1)
    manifest = result.manifest
    click.echo(f"{file.name}: OK ({manifest['database']}, schema revision {manifest['schema_revision']}, "
               f"{sum(manifest['row_counts'].values())} rows, made {manifest['created_at']})")


@backup_group.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even though other processes use the database.")
@with_appcontext
def backup_restore_command(file, force):
    """Replace the database's contents with a backup's (after verifying it), upgrade
    its schema if it is older, and rebuild the search index. Refuses while another
    process (the app) has the database open, unless --force."""
    from flask_migrate import upgrade

    from services import audit, backup

    db.session.remove()
    db.engine.dispose()  # this process's own connections would count as "in use"
    try:
        restored = backup.restore(file, _backup_database(), force=force, known_revisions=_known_revisions())
    except (backup.BackupError, OSError) as refused:
        raise click.ClickException(f"Nothing restored: {refused}") from None
    db.engine.dispose()
    manifest = restored.manifest
    click.echo(f"Restored {restored.database} from {file.name} (made {manifest['created_at']}, "
               f"{sum(manifest['row_counts'].values())} rows).")
    upgrade()  # a backup from an older version gets this version's schema
    audit.record("backup.restore", actor_name="cli", file=file.name, backup_created_at=manifest["created_at"],
                 schema_revision=manifest["schema_revision"], forced=force)
    db.session.commit()
    click.echo("Rebuilding the search index …")
    _rebuild_index()
    click.echo("Settings (SECRET_KEY) are not restored: instance/config.py stays as it is; the backup's "
               "copy is config.py inside the archive.")


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(os.path.join(current_app.root_path, "migrations"))
    return {script.revision for script in scripts.walk_revisions()}


@click.group("jobs")
def jobs_group():
    """The nightly jobs the app runs itself (D5): pool sweep, search housekeeping,
    pruning, backup."""


@jobs_group.command("run")
@click.argument("name", required=False, type=click.Choice(["pool_sweep", "search", "prune", "backup"]))
@click.option("--force", is_flag=True, help="Run even if it already ran for tonight's slot.")
@with_appcontext
def jobs_run_command(name, force):
    """Run the jobs (or job NAME) that have not run for the current nightly slot, each
    under its lease. Exit status 1 when one fails, 75 when another process runs one."""
    from services import nightly

    names = [name] if name else list(nightly.JOBS)
    failed = held = False
    for job in names:
        outcome = nightly.run(job, force=force, started_by="cli", echo=click.echo)
        if outcome.held_by:
            click.echo(f"{job}: another process is running it ({outcome.held_by}); skipped.", err=True)
            held = True
        elif not outcome.ran:
            click.echo(f"{job}: already ran for this night's slot (--force runs it again).")
        else:
            click.echo(f"{job}: {'ok' if outcome.ok else 'FAILED'}: {outcome.message}")
            failed = failed or not outcome.ok
    if failed or held:
        sys.exit(1 if failed else HELD_EXIT_STATUS)


@jobs_group.command("status")
@click.option("--lang", type=click.Choice(["zh", "en"]),
              help="Language of the messages (default: the office's, BABEL_DEFAULT_LOCALE).")
@with_appcontext
def jobs_status_command(lang):
    """Each job's last run and result, whether it runs now, and the next slot."""
    from flask_babel import force_locale
    from flask_babel import gettext as _

    from extensions import reading_only
    from models import utcnow
    from services import leases, nightly

    now = utcnow()
    with reading_only():
        states = leases.states(nightly.JOBS, now)
        hour = leases.nightly_hour()
    with force_locale(lang or current_app.config["BABEL_DEFAULT_LOCALE"]):
        click.echo(_("Nightly at %(hour)02d:00 office time; next run %(when)s UTC.", hour=hour,
                     when=f"{leases.next_run(now, hour):%Y-%m-%d %H:%M}"))
        for name, state in states.items():
            result = {True: _("ok"), False: _("FAILED"), None: _("never ran")}[state.ok]
            when = f"{state.finished_at:%Y-%m-%d %H:%M} UTC" if state.finished_at else "-"
            line = f"{name:<11} {result:<9} {when:<21} {nightly.detail_text(state.details, state.message)}"
            if state.running:
                line += "  [" + _("running since %(when)s UTC in %(holder)s", when=f"{state.started_at:%H:%M}",
                                  holder=state.holder) + "]"
            if state.attention:
                line += f"  [{_('overdue') if state.attention == 'overdue' else _('failed')}]"
            click.echo(line)


def init_app(app) -> None:
    for command in (init_command, create_user_command, ensure_admin_command, demo_data_command,
                    pool_group, search_group, backup_group, jobs_group, import_group):
        app.cli.add_command(command)
