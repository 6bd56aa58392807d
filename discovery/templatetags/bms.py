"""Template filters of the web interface."""

from django import template

register = template.Library()

UNIT_SYMBOLS = {
    "degrees-fahrenheit": "°F",
    "degrees-celsius": "°C",
    "degrees-kelvin": "K",
    "percent": "%",
    "percent-relative-humidity": "%RH",
    "cubic-feet-per-minute": "cfm",
    "liters-per-second": "l/s",
    "cubic-meters-per-hour": "m³/h",
    "pascals": "Pa",
    "kilopascals": "kPa",
    "inches-of-water": "inH₂O",
    "volts": "V",
    "amperes": "A",
    "watts": "W",
    "kilowatts": "kW",
    "kilowatt-hours": "kWh",
    "hertz": "Hz",
    "parts-per-million": "ppm",
    "seconds": "s",
    "minutes": "min",
    "hours": "h",
    "no-units": "",
}


@register.filter
def unit_symbol(units: str) -> str:
    """A BACnet engineering-units name as people write it: degrees-fahrenheit -> °F."""
    if not units:
        return ""
    return UNIT_SYMBOLS.get(units, units.replace("-", " "))
