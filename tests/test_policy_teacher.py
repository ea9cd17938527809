"""The learning loop's pure half (``semcache.policies.learning``): what it decides on plain
values, with no cache, store or index behind it (issue #19)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from semcache._entries import Candidate, Observation
from semcache.policies import StaticThreshold, VerifiedPolicy
from semcache.policies.learning import SAVE_EVERY, Teacher, judged
from semcache.policies.verified import cell_of


class Recorder(VerifiedPolicy):
    """A verified policy that also keeps what it was taught."""

    def __init__(self) -> None:
        super().__init__(0.05, seed=0)
        self.taught: list[tuple[Observation, tuple[Observation, ...], bool]] = []

    def observe(self, observation: Observation, history: Sequence[Observation] = (), *,
                audited: bool = False) -> None:
        self.taught.append((observation, tuple(history), audited))
        super().observe(observation, history, audited=audited)


@given(st.lists(st.tuples(st.floats(0.5, 1.0), st.booleans()), max_size=3 * SAVE_EVERY + 3))
def test_the_state_is_due_every_save_every_judgements(outcomes: list[tuple[float, bool]]
                                                      ) -> None:
    teacher, policy = Teacher(), Recorder()
    due = [teacher.teach(policy, Observation(s, ok)) for s, ok in outcomes]
    assert [i + 1 for i, d in enumerate(due) if d is not None] == \
        list(range(SAVE_EVERY, len(outcomes) + 1, SAVE_EVERY))
    assert len(policy.taught) == len(outcomes)
    for d in due:
        if d is not None:  # what is saved restores: the policy's own state
            VerifiedPolicy(0.05).load_state(d)


def test_a_policy_that_does_not_learn_has_no_state_to_restore() -> None:
    teacher = Teacher()
    assert not teacher.restore_now(StaticThreshold())
    assert teacher.restore_now(VerifiedPolicy(0.05))
    assert not teacher.restore_now(VerifiedPolicy(0.05))  # once per process


def test_a_judgement_teaches_both_entries_and_marks_the_query_only_when_wrong() -> None:
    right = judged(0.91, True, "q1")
    wrong = judged(0.91, False, "q1")
    assert right == (Observation(0.91, True, None), Observation(0.91, True, None))
    assert wrong == (Observation(0.91, False, "q1"), Observation(0.91, False, None))
    # the candidate's wrong outcome at 0.91 refutes it at that similarity for the policy
    assert cell_of(0.91, [wrong[0]]) is None and cell_of(0.92, [wrong[0]]) is not None


def test_feedback_teaches_with_the_history_the_hit_was_served_with() -> None:
    teacher = Teacher()
    history = (Observation(0.88, True),)
    teacher.remember_hit("entry", "request", 0.93, history)
    meta: Mapping[str, Any] = teacher.hit_metadata("request")
    assert meta == {"key": "entry", "similarity": 0.93, "request_key": "request",
                    "stage": "semantic"}
    assert teacher.hit_metadata("entry") == meta  # by either key
    obs, seen = teacher.feedback(meta, False, "digest")
    assert obs == Observation(0.93, False, "digest") and seen == history
    obs, seen = teacher.feedback(meta, True, "digest")
    assert obs == Observation(0.93, True, None) and seen == history
    # another entry served for that request key: its history is not this one's
    assert teacher.feedback({**meta, "key": "other"}, True, None)[1] == ()
    # a forgotten key reads as an exact hit's entry key
    assert teacher.hit_metadata("gone") == {"key": "gone", "similarity": 1.0,
                                            "request_key": None, "stage": "exact"}


def test_what_the_teacher_learns_changes_the_policys_estimates() -> None:
    """End to end on plain values: the outcomes taught at about 0.9 are what the
    policy's estimate of a fresh candidate there follows."""
    def taught(correct: bool) -> VerifiedPolicy:
        teacher, policy = Teacher(), VerifiedPolicy(0.05, seed=0, min_judged=5,
                                                    min_budget_samples=0, min_audits=0,
                                                    audit_rate=0.0)
        for i in range(200):
            teacher.teach(policy, Observation(0.9 + (i % 10) / 1000, correct))
        return policy

    right, wrong = taught(True), taught(False)
    assert right.estimate(0.905)[0] < 0.01 < 0.99 < wrong.estimate(0.905)[0]
    cand = [Candidate("k", 0.905, "p", 0.0, None)]
    assert wrong.decide("q", cand, 0.7).action == "explore"


def test_teach_hands_the_policy_the_entrys_history_and_the_audit_flag() -> None:
    teacher, policy = Teacher(), Recorder()
    history = (Observation(0.88, True), Observation(0.95, False, "x"))
    teacher.teach(policy, Observation(0.9, True), history, audited=True)
    teacher.teach(policy, Observation(0.9, False))
    assert policy.taught == [(Observation(0.9, True), history, True),
                             (Observation(0.9, False), (), False)]
    assert policy.counts["judged"] == 2 and policy.counts["audit_wrong"] == 0
