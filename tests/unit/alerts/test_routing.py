"""Who hears about a spike: topic, requested states, stories not yet announced."""

from alerts.routing import Subscriber, route


def subscriber(**kwargs):
    base = dict(name="desk", topics=("5g-security",), webhook_url="https://hooks.example/x")
    return Subscriber(**{**base, **kwargs})


def test_started_spike_reaches_each_channel_of_matching_subscribers(spike):
    subs = [subscriber(email="a@example.org"), subscriber(name="other", topics=("sanctions",))]
    notes = route(spike, subs)
    assert [(n.subscriber, n.channel) for n in notes] == [("desk", "webhook"), ("desk", "email")]
    assert len({n.message_id for n in notes}) == 2


def test_message_ids_are_stable_so_a_replayed_spike_is_not_sent_twice(spike):
    assert [n.message_id for n in route(spike, [subscriber()])] == [
        n.message_id for n in route(dict(spike), [subscriber()])
    ]


def test_updates_only_for_subscribers_who_asked(spike):
    escalated = dict(spike, state="escalated")
    assert route(escalated, [subscriber()]) == []
    assert len(route(escalated, [subscriber(notify_on=("started", "escalated"))])) == 1


def test_inactive_subscriber_gets_nothing(spike):
    assert route(spike, [subscriber(active=False)]) == []


def test_a_spike_whose_stories_were_all_announced_is_not_sent_again(spike):
    told = {("desk", "s1"), ("desk", "s2")}
    assert route(spike, [subscriber()], lambda sub, story: (sub, story) in told) == []
    told.discard(("desk", "s2"))
    (note,) = route(spike, [subscriber()], lambda sub, story: (sub, story) in told)
    assert note.new_story_ids == ("s2",)
