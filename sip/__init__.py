"""Everything pjsua2: SIP worker processes, calls, trunks, transfers, media bridge."""
