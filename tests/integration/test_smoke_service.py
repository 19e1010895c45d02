from auditlog_client import AuditClient


def test_created_event_is_returned_by_get(client: AuditClient) -> None:
    created = client.create_event(event_type="user.login", action="successful_login", user_id="user123")
    fetched = client.get_event(created.id)
    assert fetched == created
    assert created.sequence == 0
