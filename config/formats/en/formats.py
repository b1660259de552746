# Every time the admin shows (changelists, read-only fields) in the debug pages' one format: to the
# second, with the zone (the debug pages add its age; see todolists/templatetags/todo_debug.py).
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
