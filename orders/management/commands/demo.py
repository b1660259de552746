import secrets
import signal
import socket
import subprocess
import sys
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from orders.commands import order_place


def port_free_or_raise(addrport: str) -> None:
    host, _, port = addrport.rpartition(":")
    if not port.isdigit():
        raise CommandError(f"--addrport {addrport!r} is not host:port, e.g. 127.0.0.1:8000.")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
        try:
            s.bind((host or "127.0.0.1", int(port)))
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {host or '127.0.0.1'}:{port} ({exc.strerror}); is another demo running? "
                "Pick another with --addrport 127.0.0.1:8001."
            ) from None


class Command(BaseCommand):
    help = (
        "Run the whole system on this machine: migrate, create a staff login, place demo orders, and "
        "start the admin on 127.0.0.1:8000 with a django-q2 cluster beside it. Ctrl-C stops both."
    )

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="Where the admin listens.")
        parser.add_argument(
            "--orders", type=int, default=20, help="Demo orders to place at start (default 20)."
        )
        parser.add_argument(
            "--every", type=float, default=5.0, help="Place one more order every N seconds (0: off)."
        )

    def handle(self, *args, addrport, orders, every, **options):
        if not settings.DEBUG:
            raise CommandError("demo serves the admin with runserver; run it with DEBUG=1 (see README).")
        if orders < 0 or every < 0:
            raise CommandError("--orders and --every must not be negative.")
        # Before anything starts (a cluster, migrations): a busy port must not leave a cluster behind.
        port_free_or_raise(addrport)
        call_command("migrate", interactive=False, verbosity=0)
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username="demo", defaults={"is_staff": True})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        if orders:
            call_command("simulate", orders=orders, decline_rate=0.2)
        # Its own session: a signal to our process group (Ctrl-C, `timeout`) must not reach the cluster's
        # children directly, or django-q2's sentinel dies and the cluster hangs. We stop it by its main pid.
        cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=settings.BASE_DIR, start_new_session=True
        )
        stop = threading.Event()
        if every:
            threading.Thread(target=self._trickle, args=(every, stop), daemon=True).start()
        self.stdout.write(
            self.style.SUCCESS(f"\nAdmin: http://{addrport}/admin/  login: demo  password: {password}\n")
            + f"Database: {connection.settings_dict['NAME']}  broker: "
            + ("redis" if "redis" in settings.Q_CLUSTER else "django ORM")
        )
        # SIGTERM (e.g. from `timeout` or a supervisor) unwinds like Ctrl-C, so the cluster is stopped too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            stop.set()
            cluster.send_signal(signal.SIGTERM)
            try:
                cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cluster.kill()

    def _trickle(self, every: float, stop: threading.Event) -> None:
        n = 0
        while not stop.wait(every):
            n += 1
            declined = n % 5 == 0
            order_place(
                amount=f"{10 + n % 90}.{n % 100:02d}",
                currency="EUR",
                customer=f"walk-in-{n}",
                payment_method="pm_card_chargeCustomerFail" if declined else "pm_card_visa",
                actor="manage.py demo",
            )
        connection.close()
