{#- Generic data tests that dbt_utils would have provided (dbt hub packages are unreachable here). -#}

{% test value_in_range(model, column_name, min_value=none, max_value=none) %}
{#- Fails on rows whose value lies outside [min_value, max_value] (nulls are left to not_null). -#}
select {{ column_name }} as failing_value
from {{ model }}
where {{ column_name }} is not null
    and (
        false
        {%- if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
        {%- if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %}
        or isnan(cast({{ column_name }} as double))
    )
{% endtest %}

{% test unique_combination(model, combination) %}
{#- Fails on every combination of columns that occurs more than once. -#}
select {{ combination | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}

{% test expression_is_true(model, expression) %}
{#- Fails on every row where the SQL boolean `expression` (over the model's columns) is not true. -#}
select *
from {{ model }}
where not coalesce({{ expression }}, false)
{% endtest %}
