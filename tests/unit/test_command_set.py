"""A device's commanders as one: each command goes to the commander that has it."""

from __future__ import annotations

from drivers.commands import CommandResult, CommandSet


class Recording:
    def __init__(self, *commands: str) -> None:
        self._commands, self.ran = list(commands), list[str]()

    @property
    def commands(self) -> list[str]:
        return self._commands

    async def execute(self, command: str) -> CommandResult:
        self.ran.append(command)
        return CommandResult("ok", command)


async def test_commands_go_to_their_commander_and_unknown_ones_are_refused() -> None:
    keys, relay = Recording("start", "stop"), Recording("open")
    device = CommandSet([keys, relay])
    assert device.commands == ["open", "start", "stop"]
    assert (await device.execute("open")).outcome == "ok" and relay.ran == ["open"]
    assert (await device.execute("stop")).outcome == "ok" and keys.ran == ["stop"]
    refused = await device.execute("launch")
    assert refused.outcome == "refused" and keys.ran == ["stop"] and relay.ran == ["open"]
