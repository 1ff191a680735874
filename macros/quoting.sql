{#- A value as a single-quoted SQL string literal (quotes doubled): every path, glob or var that
    reaches SQL text goes through here (the Python side: stronglens.sqltext.literal). -#}
{% macro sql_string(value) -%}
    '{{ (value | string).replace("'", "''") }}'
{%- endmacro %}
