"""What differs between the Airflow lines this provider supports, in one place.

Airflow 3.2 moved the task exceptions into the Task SDK (``airflow.sdk.exceptions``); from then on
``airflow.exceptions`` only forwards them with a DeprecatedImportWarning. Airflow 3.1 has them in
``airflow.exceptions`` alone.
"""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
    )

__all__ = ["AirflowException", "AirflowFailException", "AirflowNotFoundException", "AirflowSkipException"]
