"""Tests of the rules-and-paging bundle: prometheus/, alertmanager/, grafana/, compose, stack/."""
