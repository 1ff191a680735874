-- Frame of suite `n2_summary`: the mart as built, with each split's N2 share once per split (on its
-- N1 row; null on the others) so that an out-of-band split is reported once.
select
    split,
    category,
    is_n2,
    n_negatives,
    share,
    n2_share_of_split,
    case when category = 'N1' then n2_share_of_split end as split_n2_share
from n2_summary
