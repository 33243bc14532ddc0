"""Graph + applied state + workspace -> Plan. The only place where staleness is decided."""
