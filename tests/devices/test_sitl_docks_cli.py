"""`dronedispatch sitl --mqtt-url URL --weather SPEC`: one simulated dock per fleet dock on the broker."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest
import yaml

from dronedispatch import cityfiles
from dronedispatch.cli import main
from dronedispatch.domain.docks import DockState, DoorState, command_topic, dock_of_topic, parse_state
from dronedispatch.sim.docks import CONTROL_PREFIX
from tests.fixtures.services import MosquittoServer, free_udp_port
from tests.mavlink.simfleet import free_udp_range

DD = [sys.executable, "-m", "dronedispatch.cli"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--weather", "wind=3"], "need --mqtt-url"),
        (["--dock-door-interlock"], "need --mqtt-url"),
        (["--mqtt-url", "mqtt://127.0.0.1:1", "--weather", "wind=9,gust=2"], "gust_ms is below wind_mean_ms"),
        (["--mqtt-url", "mqtt://127.0.0.1:1", "--weather", "storm=1"], "expected wind=,gust=,rain=,temp="),
    ],
)
def test_dock_options_are_checked(capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as code:
        sys.exit(main(["sitl", *args]))
    assert code.value.code == 2
    assert says in capsys.readouterr().err


async def test_sitl_publishes_its_docks_and_obeys_commands(
    tmp_path: Path, mosquitto_factory: Callable[[], MosquittoServer]
) -> None:
    # its own broker: the docks' retained states must not reach later tests' services
    mosquitto = mosquitto_factory()
    fleet = cityfiles.load_fleet().sized(2)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(yaml.safe_dump(fleet.model_dump(), allow_unicode=True), encoding="utf-8")
    prefix_docks = {d.id for d in fleet.docks}
    proc = await asyncio.create_subprocess_exec(
        *DD, "sitl", "--vehicles", "2", "--fleet", str(fleet_file), "--speed-factor", "20", "--no-video",
        "--gcs-port", str(free_udp_port()), "--vehicle-port-base", str(free_udp_range(2)), "--api-port-base", "0",
        "--mqtt-url", mosquitto.url, "--weather", "wind=5,gust=8,rain=0,temp=12",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    states: dict[str, DockState] = {}
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe("dronedispatch/docks/+/state", qos=1)
            async with asyncio.timeout(20):
                opened = False
                step = 0
                async for m in c.messages:
                    dock_id = dock_of_topic(str(m.topic), "state")
                    if dock_id not in prefix_docks or not m.payload:
                        continue
                    assert isinstance(m.payload, bytes)
                    states[dock_id] = s = parse_state(m.payload, dock_id=dock_id)
                    if set(states) == prefix_docks and not opened:
                        await c.publish(command_topic("gtower"), b'{"command": "open", "request_id": "cli-1"}', qos=1)
                        opened = True
                    if dock_id == "gtower" and s.door is DoorState.OPEN and step == 0:
                        step = 1  # set at run time through the simulator's own control topic
                        await c.publish(f"{CONTROL_PREFIX}/all/control", b'{"set": "weather", "wind": 9, "gust": 14}')
                        await c.publish(f"{CONTROL_PREFIX}/gtower/control", b'{"set": "thunder"}')  # ignored
                        await c.publish(
                            f"{CONTROL_PREFIX}/gtower/control", b'{"set": "fault", "reason": "door jammed"}'
                        )
                    if dock_id == "gtower" and s.fault == "door jammed" and s.weather and s.weather.gust_ms == 14:
                        break
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 15)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:  # leave no retained state behind
            for d in prefix_docks:
                await c.publish(f"dronedispatch/docks/{d}/state", b"", retain=True)
    gtower = states["gtower"]
    assert gtower.last_command is not None and gtower.last_command.request_id == "cli-1"
    assert gtower.drone_present and gtower.door is DoorState.FAULT
    assert all(s.weather is not None for s in states.values())  # --weather, then the control topic
    # the two vehicles sit in the first two docks; the others are empty
    assert sum(s.drone_present for s in states.values()) == 2, err.decode()
