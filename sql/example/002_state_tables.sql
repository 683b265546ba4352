-- presence and call_state hold current state: a snapshot sends every row.
SELECT walcast.register_table('public.presence', channel_column => 'channel_id',
  ttl => interval '2 minutes', time_column => 'updated_at', kind => 'state');
SELECT walcast.register_table('public.call_state', channel_column => 'session_id', kind => 'state');
