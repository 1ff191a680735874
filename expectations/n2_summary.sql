-- Frame of suite `n2_summary`: the mart as built, plus one value per (split, category) row for each
-- band the suite checks: category_pool_prevalence on the N2 rows (null on N1), and the split's
-- overall N2 share of the sample and of the pool once per split, on its N1 row (null on the others),
-- so that an out-of-band split is reported once.
select
    split,
    category,
    is_n2,
    n_negatives,
    share,
    pool_prevalence,
    n2_share_of_split,
    pool_n2_prevalence,
    case when is_n2 then pool_prevalence end as category_pool_prevalence,
    case when not is_n2 then n2_share_of_split end as split_n2_share,
    case when not is_n2 then pool_n2_prevalence end as split_pool_n2_prevalence
from n2_summary
