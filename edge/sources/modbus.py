"""Registers of a commercial people counter or rink sensor over Modbus TCP.

Each field of the reading comes from one register (or a pair, for 32-bit
values), scaled as ``value = raw * scale + offset``. Addresses are the ones on
the wire, counted from 0: a register a manual calls "40001" is holding
register 0, "30001" is input register 0.

Sample configuration, a people counter with 32-bit totals::

    [[sources]]
    type = "modbus"
    host = "192.168.10.20"
    port = 502
    unit = 1                        # the Modbus device (slave) id
    stream = "count"
    name = "main"                   # the counter's name (the sensor's, for stream = "rink")
    interval_s = 5
    fields.entries = { address = 0, type = "uint32" }
    fields.exits = { address = 2, type = "uint32" }

An ice-rink controller that gives tenths of a degree in input registers::

    [[sources]]
    type = "modbus"
    host = "192.168.10.21"
    stream = "rink"
    name = "ice"
    fields.ice_temp_c = { address = 10, kind = "input", type = "int16", scale = 0.1 }
    fields.air_temp_c = { address = 11, kind = "input", type = "int16", scale = 0.1 }
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.sources import (
    AIR_RANGE,
    ICE_RANGE,
    Readings,
    SourceConfigBase,
    SourceError,
    as_count,
)
from ruuhka.contract import SourceName, Stream

RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32"]
FieldName = Literal["entries", "exits", "occupancy", "ice_temp_c", "air_temp_c"]
_WIDTH = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
_COUNT_FIELDS = {"entries", "exits", "occupancy"}
_RINK_FIELDS = {"ice_temp_c", "air_temp_c"}


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: int = Field(ge=0, le=65535)
    kind: Literal["holding", "input"] = "holding"
    type: RegisterType = "uint16"
    scale: float = 1.0
    offset: float = 0.0


class ModbusConfig(SourceConfigBase):
    type: Literal["modbus"] = "modbus"
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255, description="Modbus device (slave) id.")
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    word_order: Literal["big", "little"] = Field(
        default="big", description="Which register of a 32-bit pair holds the high word."
    )
    stream: Literal["count", "rink"] = "count"
    name: SourceName = "main"
    fields: dict[FieldName, Register]

    @model_validator(mode="after")
    def _fields_fit_the_stream(self) -> ModbusConfig:
        names = set(self.fields)
        if self.stream == "count":
            if not names <= _COUNT_FIELDS:
                raise ValueError(f"a count has no {sorted(names - _COUNT_FIELDS)}")
            if names not in ({"occupancy"}, {"entries", "exits"}):
                raise ValueError("map occupancy, or entries and exits")
        else:
            if not names <= _RINK_FIELDS:
                raise ValueError(f"a rink reading has no {sorted(names - _RINK_FIELDS)}")
            if "ice_temp_c" not in names:
                raise ValueError("a rink reading needs ice_temp_c")
        return self


class ModbusSource:
    def __init__(self, config: ModbusConfig) -> None:
        try:
            from pymodbus.client import ModbusTcpClient
        except ImportError:
            raise SourceError("pymodbus is not installed: pip install 'ruuhka[edge]'") from None
        self.config = config
        self.name = config.name
        self.interval_s = config.interval_s
        self.max_backoff_s = config.max_backoff_s
        # No retries of its own: the agent's backoff handles a device that is away.
        self.client = ModbusTcpClient(
            config.host, port=config.port, timeout=config.timeout_s, retries=0
        )

    def _register(self, field: str, register: Register) -> float:
        from pymodbus.exceptions import ModbusException

        c = self.config
        read = (
            self.client.read_holding_registers
            if register.kind == "holding"
            else self.client.read_input_registers
        )
        try:
            response = read(register.address, count=_WIDTH[register.type], device_id=c.unit)
        except (ModbusException, OSError) as exc:
            self.client.close()
            raise SourceError(f"{c.host}:{c.port} {field}: {exc}") from None
        if response.isError():
            raise SourceError(f"{c.host}:{c.port} {field}: device answered {response}")
        data_type = getattr(self.client.DATATYPE, register.type.upper())
        raw = self.client.convert_from_registers(
            response.registers, data_type, word_order=c.word_order
        )
        assert isinstance(raw, int | float)
        value = raw * register.scale + register.offset
        if not math.isfinite(value):
            raise SourceError(f"{c.host}:{c.port} {field}: {value}")
        return value

    def read(self, now: datetime) -> Readings:
        c = self.config
        if not self.client.connected and not self.client.connect():
            raise SourceError(f"cannot connect to {c.host}:{c.port}")
        values = {field: self._register(field, reg) for field, reg in c.fields.items()}
        fields: dict[str, Any]
        if c.stream == "count":
            fields = {"counter": self.name}
            for field, value in values.items():
                fields[field] = as_count(round(value, 6), f"{c.host} {field}")
            return [(Stream.COUNT, fields)]
        fields = {"sensor": self.name}
        for field, value in values.items():
            low, high = ICE_RANGE if field == "ice_temp_c" else AIR_RANGE
            if not low <= value <= high:
                raise SourceError(f"{c.host} {field}: {value} °C is out of range")
            fields[field] = round(value, 2)
        return [(Stream.RINK, fields)]

    def describe(self) -> str:
        return f"{self.config.host}:{self.config.port} unit {self.config.unit}"

    def close(self) -> None:
        self.client.close()
