#!/bin/sh
# A CGI script: its stdout is the client's connection (python's http.server --cgi).
printf 'Content-Type: text/plain\r\n\r\n'
echo "hello from a CGI script"
echo "query: $QUERY_STRING"
i=0
while [ $i -lt 200 ]; do echo "line $i of a longer body"; i=$((i + 1)); done
