"""Customs clearance time monitoring for the Shenyang and Dalian customs districts."""
