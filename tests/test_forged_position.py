"""The log's read order (tx_id) is the database's to set: an event inserted by the application role
with a forged tx_id is still read by the live projections (PostgreSQL)."""

import psycopg
import pytest

from eventstore.projections import projection_catch_up
from eventstore.store import event_append
from tests.conftest import Applied, ThingHappened, requires_postgres
from tests.test_append_only_roles import app_role  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgres("transaction ids are PostgreSQL's")]

INSERT = (
    "INSERT INTO eventstore_event (stream_id, stream_version, type, schema_version, data,"
    " correlation_id, causation_id, actor, recorded_at, tx_id)"
    " VALUES (%s, 1, 'TestThingHappened', 1, '{\"n\": 2}', %s, '', 'app', now(), %s)"
    " RETURNING position, tx_id, pg_current_xact_id()::text::bigint"
)


@pytest.mark.parametrize("forged", [1, 2**62], ids=["below every checkpoint", "far in the future"])
def test_a_forged_tx_id_is_kept_within_the_inserting_transaction_s_and_the_live_projection_reads_it(
    app_role,  # noqa: F811
    applied_projection,
    forged,
):
    applied_projection.poisoned = False
    event_append(stream_id="s-1", events=[ThingHappened(n=1)], expected_version=0)
    assert projection_catch_up(name="test_applied").applied == 1  # the checkpoint is past tx_id 1

    with psycopg.connect(**app_role) as app:
        position, stored, own = app.execute(INSERT, ["s-forged", "", forged]).fetchone()
    assert stored == own != forged  # nothing in the stream or case holds a later id

    assert projection_catch_up(name="test_applied").applied == 1
    assert Applied.objects.filter(position=position).exists()
