"""The management commands an operator uses besides `serve`: virtual_device and the port migration."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from discovery.models import LocalDeviceState, VirtualBACnetDevice, VirtualBACnetObject
from discovery.services import virtual_store

pytestmark = pytest.mark.usefixtures("db")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def create(device_id: int = 1001, name: str = "AHU-1", template: str = "hvac_controller") -> str:
    return run(
        "virtual_device", "create", "--template", template, "--device-id", str(device_id), "--name", name
    )


def command_error(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    return str(info.value)


# --- virtual_device ---------------------------------------------------------------------------


def test_it_creates_a_device_with_the_templates_objects_and_says_so():
    revision = virtual_store.get_database_revision()

    output = create()

    assert output.splitlines() == [
        "Created virtual device 1001 (AHU-1):",
        "    analog-input,1  Virtual_1001_Zone_Temperature  = 71.5 degrees-fahrenheit",
        "    analog-output,1  Virtual_1001_Temperature_Setpoint  = 72 degrees-fahrenheit",
        "    binary-output,1  Virtual_1001_Fan_Control  = Off",
    ]
    device = VirtualBACnetDevice.objects.get(device_id=1001)
    assert (device.name, device.template, device.port) == ("AHU-1", "hvac_controller", 47808)
    assert list(device.bacnet_objects.values_list("object_type", "instance")) == [
        ("analog-input", 1),
        ("analog-output", 1),
        ("binary-output", 1),
    ]
    assert virtual_store.get_database_revision() == revision + 1


def test_it_gives_the_next_device_the_next_instance_numbers():
    create(1001, "AHU-1")
    create(1002, "AHU-2")
    second = VirtualBACnetDevice.objects.get(device_id=1002)
    assert list(second.bacnet_objects.values_list("object_type", "instance")) == [
        ("analog-input", 2),
        ("analog-output", 2),
        ("binary-output", 2),
    ]


def test_it_lists_every_device_with_its_objects():
    assert run("virtual_device", "list").strip() == "No virtual devices."
    create(1001, "AHU-1")
    create(2001, "Room", template="temperature_sensor")

    lines = run("virtual_device", "list").splitlines()

    assert lines[0] == "1001  AHU-1  [hvac_controller]"
    assert "    analog-output,1  Virtual_1001_Temperature_Setpoint  = 72 degrees-fahrenheit" in lines
    assert "2001  Room  [temperature_sensor]" in lines
    assert "    analog-input,3  Virtual_2001_Humidity  = 45 percent-relative-humidity" in lines
    assert len(lines) == 2 + 3 + 2


def test_it_deletes_a_device_and_its_objects():
    create()
    revision = virtual_store.get_database_revision()

    assert run("virtual_device", "delete", "1001").strip() == "Deleted virtual device 1001."

    assert not VirtualBACnetDevice.objects.exists()
    assert not VirtualBACnetObject.objects.exists()
    assert virtual_store.get_database_revision() == revision + 1
    assert run("virtual_device", "list").strip() == "No virtual devices."


def test_it_never_reuses_the_instance_numbers_of_a_deleted_device():
    create(1001, "AHU-1")
    run("virtual_device", "delete", "1001")
    create(1002, "AHU-2")
    assert set(VirtualBACnetObject.objects.values_list("instance", flat=True)) == {2}


@pytest.mark.parametrize(
    ("template", "device_id", "message"),
    [
        ("no_such_template", 1001, "invalid choice: 'no_such_template'"),
        ("hvac_controller", 8888, "Device id 8888 is this application's own BACnet device"),
        ("hvac_controller", 4194303, "Device id 4194303 is not between 0 and 4194302"),
        ("hvac_controller", -1, "Device id -1 is not between 0 and 4194302"),
    ],
    ids=["unknown-template", "own-device-id", "id-above-range", "negative-id"],
)
def test_it_refuses_a_device_it_cannot_create_and_creates_nothing(template, device_id, message):
    revision = virtual_store.get_database_revision()

    error = command_error(
        "virtual_device", "create", "--template", template, "--device-id", str(device_id), "--name", "X"
    )

    assert message in error
    assert not VirtualBACnetDevice.objects.exists()
    assert not VirtualBACnetObject.objects.exists()
    assert virtual_store.get_database_revision() == revision


def test_it_refuses_a_duplicate_device_id_and_leaves_the_first_device_alone():
    create(1001, "AHU-1")
    revision = virtual_store.get_database_revision()

    error = command_error(
        "virtual_device",
        "create",
        "--template",
        "temperature_sensor",
        "--device-id",
        "1001",
        "--name",
        "Other",
    )

    assert error == "A virtual device with id 1001 already exists."
    assert list(VirtualBACnetDevice.objects.values_list("name", flat=True)) == ["AHU-1"]
    assert VirtualBACnetObject.objects.count() == 3
    assert virtual_store.get_database_revision() == revision


def test_it_refuses_an_empty_name():
    error = command_error(
        "virtual_device", "create", "--template", "hvac_controller", "--device-id", "1001", "--name", "  "
    )
    assert error == "A virtual device needs a name."
    assert not VirtualBACnetDevice.objects.exists()


def test_it_refuses_to_delete_a_device_that_does_not_exist():
    create(1001, "AHU-1")
    revision = virtual_store.get_database_revision()

    assert command_error("virtual_device", "delete", "4242") == "No virtual device with id 4242."

    assert VirtualBACnetDevice.objects.count() == 1
    assert virtual_store.get_database_revision() == revision


def test_it_needs_an_action():
    assert "action" in command_error("virtual_device")


# --- migrate_to_unified_service -------------------------------------------------------------


@pytest.fixture
def legacy_devices():
    create(1001, "AHU-1")
    create(2001, "Room", template="temperature_sensor")
    VirtualBACnetDevice.objects.update(port=47809)


def ports() -> dict[int, int]:
    return dict(VirtualBACnetDevice.objects.values_list("device_id", "port"))


def test_a_dry_run_says_what_would_move_and_changes_nothing(legacy_devices):
    revision = virtual_store.get_database_revision()

    output = run("migrate_to_unified_service", "--dry-run")

    assert output.splitlines() == [
        "Would move AHU-1 (1001) from port 47809 to 47808",
        "Would move Room (2001) from port 47809 to 47808",
        "Dry run: 2 device(s) would be migrated.",
    ]
    assert ports() == {1001: 47809, 2001: 47809}
    assert virtual_store.get_database_revision() == revision


def test_migration_moves_legacy_devices_to_the_unified_port_and_bumps_the_revision(legacy_devices):
    revision = virtual_store.get_database_revision()

    output = run("migrate_to_unified_service")

    assert "Moving AHU-1 (1001) from port 47809 to 47808" in output
    assert "Moving Room (2001) from port 47809 to 47808" in output
    assert "Migrated 2 device(s) to port 47808." in output
    assert ports() == {1001: 47808, 2001: 47808}
    assert virtual_store.get_database_revision() == revision + 1


def test_migration_is_idempotent(legacy_devices):
    run("migrate_to_unified_service")
    revision = virtual_store.get_database_revision()

    output = run("migrate_to_unified_service")

    assert output.startswith("Nothing to migrate")
    assert ports() == {1001: 47808, 2001: 47808}
    assert virtual_store.get_database_revision() == revision


def test_migration_leaves_devices_on_other_ports_alone(legacy_devices):
    VirtualBACnetDevice.objects.filter(device_id=2001).update(port=47900)

    output = run("migrate_to_unified_service")

    assert "Migrated 1 device(s) to port 47808." in output
    assert ports() == {1001: 47808, 2001: 47900}


def test_migration_with_nothing_in_the_database_does_nothing():
    assert run("migrate_to_unified_service").startswith("Nothing to migrate")
    assert run("migrate_to_unified_service", "--dry-run").startswith("Nothing to migrate")
    assert not LocalDeviceState.objects.filter(database_revision__gt=1).exists()
