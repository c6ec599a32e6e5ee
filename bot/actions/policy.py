"""Who may do what: permission grants from etl-doctor.yml, checked at request and at click time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import ProjectConfig

README_HINT = "grant it under `permissions:` in etl-doctor.yml (see the README, Actions and permissions)"


class UsergroupDirectory(Protocol):
    """Members of Slack user groups (``usergroups.users.list``, cached by the implementation)."""

    def members(self, usergroup_id: str) -> frozenset[str]:
        """The user ids in the group (empty when unknown)."""


@dataclass(frozen=True)
class Actor:
    """Who asks, and from where.

    Attributes:
        user_id: Slack user id (U…).
        channel_id: The channel the request came from (C…), when known.
        channel_name: Its name without ``#``, when known.
        message_ts: The message clicked (or typed) in, when known.
    """

    user_id: str
    channel_id: str | None = None
    channel_name: str | None = None
    message_ts: str | None = None

    @property
    def message_link(self) -> str | None:
        """A link to the Slack message the request was made from (for the audit), when known."""
        if self.channel_id and self.message_ts:
            return f"https://slack.com/archives/{self.channel_id}/p{self.message_ts.replace('.', '')}"
        return self.channel_id

    @property
    def mention(self) -> str:
        """``<@U…>``, which Slack shows as the user's name."""
        return f"<@{self.user_id}>"


@dataclass(frozen=True)
class Decision:
    """The policy's answer.

    Attributes:
        allowed: Whether the actor may act.
        reason: Why not (names the missing permission), or which grant allowed it.
    """

    allowed: bool
    reason: str


class Policy:
    """Checks an action on a pipeline against the grants; nothing is allowed unless a grant says so.

    Args:
        project: etl-doctor.yml.
        directory: Resolves user groups to members.
    """

    def __init__(self, project: ProjectConfig, directory: UsergroupDirectory) -> None:
        self._project = project
        self._directory = directory

    def check(self, action: str, pipeline: str | None, actor: Actor) -> Decision:
        """May ``actor`` do ``action`` on ``pipeline`` from the channel they are in?"""
        what = f"`{action}` on `{pipeline or 'this target'}`"
        config = self._project.pipelines.get(pipeline or "")
        environment = config.environment if config else None
        grants = [
            (index, g)
            for index, g in enumerate(self._project.permissions)
            if action in g.actions
            and ("*" in g.pipelines or (pipeline is not None and pipeline in g.pipelines))
            and (not g.environments or (environment is not None and environment in g.environments))
        ]
        if not grants:
            return Decision(False, f"nobody may {what} yet: {README_HINT}")
        for index, grant in grants:
            if not self._is_member(grant.users, grant.usergroups, actor.user_id):
                continue
            if grant.channels and not self._in_channels(grant.channels, actor):
                continue
            return Decision(True, f"permissions[{index}]")
        channel_bound = [g for _, g in grants if self._is_member(g.users, g.usergroups, actor.user_id)]
        if channel_bound:
            channels = ", ".join(sorted({c for g in channel_bound for c in g.channels}))
            return Decision(False, f"{actor.mention} may {what} only from {channels}")
        return Decision(
            False,
            f"{actor.mention} may not {what}: not among the users or user groups granted it; {README_HINT}",
        )

    def needs_second_person(self, pipeline: str | None) -> bool:
        """Whether the pipeline is under the two-person rule."""
        return pipeline is not None and pipeline in self._project.two_person_rule

    def _is_member(self, users: tuple[str, ...], usergroups: tuple[str, ...], user_id: str) -> bool:
        return user_id in users or any(user_id in self._directory.members(group) for group in usergroups)

    @staticmethod
    def _in_channels(channels: tuple[str, ...], actor: Actor) -> bool:
        for channel in channels:
            if channel.startswith("#"):
                if actor.channel_name and channel[1:] == actor.channel_name:
                    return True
            elif channel == actor.channel_id:
                return True
        return False
