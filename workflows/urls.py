from django.urls import path

from workflows.integrations import failure_alert_views, trigger_views, webhooks
from workflows.pages import decision_views, eval_views, retention_views, run_views, views

urlpatterns = [
    path("w/<slug:slug>/", views.workspace_home, name="workspace_home"),
    # "When a run fails", a page of the workspace's settings (integrations/failure_alert_views.py).
    path(
        "w/<slug:slug>/settings/failures/",
        failure_alert_views.failure_alerts_page,
        name="failure_alerts",
    ),
    path(
        "w/<slug:slug>/settings/failures/save/",
        failure_alert_views.failure_alerts_save,
        name="failure_alerts_save",
    ),
    path(
        "w/<slug:slug>/settings/failures/rotate/",
        failure_alert_views.failure_alerts_rotate,
        name="failure_alerts_rotate",
    ),
    # The workflows page and the editor (workflows/pages/views.py).
    path("w/<slug:slug>/workflows/new/", views.workflow_new, name="workflow_new"),
    path("w/<slug:slug>/workflows/<int:pk>/", views.workflow_editor, name="workflow_editor"),
    path(
        "w/<slug:slug>/workflows/<int:pk>/duplicate/",
        views.workflow_duplicate,
        name="workflow_duplicate",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/archive/", views.workflow_archive, name="workflow_archive"
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/unarchive/",
        views.workflow_unarchive,
        name="workflow_unarchive",
    ),
    path("w/<slug:slug>/workflows/<int:pk>/delete/", views.workflow_delete, name="workflow_delete"),
    path(
        "w/<slug:slug>/workflows/<int:pk>/sync/",
        views.workflow_editor_sync,
        name="workflow_editor_sync",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/add/",
        views.workflow_step_add,
        name="workflow_step_add",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/reorder/",
        views.workflow_steps_reorder,
        name="workflow_steps_reorder",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/restore/",
        views.workflow_step_restore,
        name="workflow_step_restore",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/<int:index>/",
        views.workflow_step_save,
        name="workflow_step_save",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/<int:index>/move/",
        views.workflow_step_move,
        name="workflow_step_move",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/steps/<int:index>/delete/",
        views.workflow_step_delete,
        name="workflow_step_delete",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/inputs/",
        views.workflow_inputs_save,
        name="workflow_inputs_save",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/output/",
        views.workflow_output_save,
        name="workflow_output_save",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/settings/",
        views.workflow_settings_save,
        name="workflow_settings_save",
    ),
    path("w/<slug:slug>/workflows/<int:pk>/rename/", views.workflow_rename, name="workflow_rename"),
    path(
        "w/<slug:slug>/workflows/<int:pk>/publish/", views.workflow_publish, name="workflow_publish"
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/versions/",
        views.workflow_versions,
        name="workflow_versions",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/versions/<int:number>/restore/",
        views.workflow_version_restore,
        name="workflow_version_restore",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/test-run/",
        views.workflow_test_run,
        name="workflow_test_run",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/test-run/<int:run_id>/",
        views.workflow_test_run_status,
        name="workflow_test_run_status",
    ),
    path("w/<slug:slug>/runs/", run_views.run_list, name="run_list"),
    path("w/<slug:slug>/runs/export/", retention_views.run_export, name="run_export"),
    path("w/<slug:slug>/runs/<int:run_id>/delete/", retention_views.run_delete, name="run_delete"),
    path(
        "w/<slug:slug>/workflows/<int:pk>/runs/delete/",
        retention_views.workflow_runs_delete,
        name="workflow_runs_delete",
    ),
    path("w/<slug:slug>/runs/<int:run_id>/", run_views.run_detail, name="run_detail"),
    path("w/<slug:slug>/runs/<int:run_id>/events/", run_views.run_events, name="run_events"),
    path("w/<slug:slug>/runs/<int:run_id>/rerun/", run_views.run_rerun, name="run_rerun"),
    path("w/<slug:slug>/runs/<int:run_id>/resume/", run_views.run_resume, name="run_resume"),
    path("w/<slug:slug>/runs/<int:run_id>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("w/<slug:slug>/runs/<int:run_id>/decide/", decision_views.run_decide, name="run_decide"),
    # A signed link emailed to an approver (scrubbed from logs: config/lib/log_scrub.py).
    path("decisions/<str:token>/", decision_views.decision_link, name="decision_link"),
    # Webhooks and schedules (workflows/integrations/webhooks.py, trigger_views.py).
    path("hooks/<str:public_id>", webhooks.webhook_receive, name="webhook_receive"),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/",
        trigger_views.workflow_triggers,
        name="workflow_triggers",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/new/",
        trigger_views.trigger_create,
        name="trigger_create",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/<int:trigger_id>/edit/",
        trigger_views.trigger_edit,
        name="trigger_edit",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/<int:trigger_id>/rotate/",
        trigger_views.trigger_rotate,
        name="trigger_rotate",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/<int:trigger_id>/delete/",
        trigger_views.trigger_delete,
        name="trigger_delete",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/<int:trigger_id>/signing/",
        trigger_views.trigger_signing,
        name="trigger_signing",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/triggers/mcp/",
        trigger_views.workflow_mcp,
        name="workflow_mcp",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/schedules/new/",
        trigger_views.schedule_create,
        name="schedule_create",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/schedules/<int:schedule_id>/edit/",
        trigger_views.schedule_edit,
        name="schedule_edit",
    ),
    path(
        "w/<slug:slug>/workflows/<int:workflow_id>/schedules/<int:schedule_id>/delete/",
        trigger_views.schedule_delete,
        name="schedule_delete",
    ),
    # Evals (workflows/pages/eval_views.py).
    path(
        "w/<slug:slug>/workflows/<int:pk>/evals/", eval_views.workflow_evals, name="workflow_evals"
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/evals/start/",
        eval_views.eval_start,
        name="eval_start",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/datasets/from-runs/",
        eval_views.dataset_from_runs,
        name="dataset_from_runs",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/datasets/upload/",
        eval_views.dataset_upload,
        name="dataset_upload",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/checks/add/",
        eval_views.eval_check_add,
        name="eval_check_add",
    ),
    path(
        "w/<slug:slug>/workflows/<int:pk>/checks/<int:check_id>/delete/",
        eval_views.eval_check_delete,
        name="eval_check_delete",
    ),
    path(
        "w/<slug:slug>/datasets/<int:dataset_id>/", eval_views.dataset_detail, name="dataset_detail"
    ),
    path(
        "w/<slug:slug>/datasets/<int:dataset_id>/delete/",
        eval_views.dataset_delete,
        name="dataset_delete",
    ),
    path("w/<slug:slug>/evals/<int:eval_id>/", eval_views.eval_detail, name="eval_detail"),
    path("w/<slug:slug>/evals/<int:eval_id>/cancel/", eval_views.eval_cancel, name="eval_cancel"),
    path(
        "w/<slug:slug>/evals/<int:eval_id>/export.csv",
        eval_views.eval_export,
        name="eval_export",
    ),
]
